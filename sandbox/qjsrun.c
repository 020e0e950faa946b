/* qjsrun: runs a JavaScript transformer's inputs for the sandbox harness, each input in a
 * fresh QuickJS runtime (its own heap, built-ins and globals, freed before the next input).
 *
 * Why a runner of our own and not the qjs binary: qjs gives a script no new realm, so every
 * input needed a fresh qjs process, which gVisor starts in about 90 ms (its process start,
 * trixie's loader and libc). Linked statically against Debian's libquickjs, one process
 * serves a batch (the harness's process_per=batch) and a fresh runtime costs microseconds.
 * The runtime gets no std or os module and no module loader at all: nothing here reads a
 * file, the environment, or starts a process on the code's behalf.
 *
 *   qjsrun one|batch IN_FD RESULT_FD MEMORY_MB PRELUDE_FD CODE_FD
 *
 * Each input is a JSON request {"args": [...]} on IN_FD: the whole of it in "one" mode, or
 * a decimal length, a newline and that many bytes in "batch" mode (EOF ends the batch). In
 * the input's fresh runtime, the globals first hold three things the prelude (the
 * harness's script on PRELUDE_FD) takes and removes: __metricloom_input (the args), print
 * (writes its text and a newline to stdout, the harness's capture pipe) and
 * __metricloom_result (writes the result document to RESULT_FD, once per input;
 * length-prefixed in "batch" mode). The prelude's value is the function that calls the
 * entry and writes the result; the code (CODE_FD) runs next, as a script of its own, and
 * then the runner calls that function. The code never holds it: it can neither answer
 * early nor run after its answer. An exception while the code loads is a "load" failure
 * (or "memory") that the runner writes itself, as JSON it builds, not the code's objects.
 * The harness supervises: deadlines, caps and killing are its, as for Python.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quickjs.h"

#define STACK_BYTES (1024 * 1024)
#define MAX_REQUEST ((size_t)1 << 31)

static int result_fd = -1;
static int framed = 0;
static int answered = 0;

static void write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(3); /* the harness closed the pipe: it has ended this input */
        data += n;
        length -= (size_t)n;
    }
}

static void write_result(const char *doc, size_t length)
{
    char prefix[32];
    if (answered)
        return;
    answered = 1;
    if (framed) {
        int n = snprintf(prefix, sizeof prefix, "%zu\n", length);
        write_all(result_fd, prefix, (size_t)n);
    }
    write_all(result_fd, doc, length);
}

/* print (magic 0: its text and a newline to stdout) and __metricloom_result (magic 1). */
static JSValue js_write(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                        int magic)
{
    size_t length;
    const char *text = JS_ToCStringLen(ctx, &length, argc > 0 ? argv[0] : JS_UNDEFINED);
    (void)this_val;
    if (!text)
        return JS_EXCEPTION;
    if (magic) {
        write_result(text, length);
    } else {
        write_all(1, text, length);
        write_all(1, "\n", 1);
    }
    JS_FreeCString(ctx, text);
    return JS_UNDEFINED;
}

/* Read exactly length bytes (0 at a clean EOF before the first byte, -1 on a short read). */
static int read_exact(int fd, char *buf, size_t length)
{
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, buf + got, length - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got == 0 ? 0 : -1;
        got += (size_t)n;
    }
    return 1;
}

/* The next request (length-prefixed, or the whole of fd), NUL-terminated, in *out and its
 * length in *size; 0 at the end of the batch (EOF before a length line), 1 otherwise. */
static int next_request(int fd, int length_prefixed, char **out, size_t *size)
{
    size_t length = 0, capacity;
    char c, *buf;
    if (length_prefixed) {
        int digits = 0;
        for (;;) {
            int r = read_exact(fd, &c, 1);
            if (r == 0 && digits == 0)
                return 0; /* the end of the batch */
            if (r != 1 || (c != '\n' && (c < '0' || c > '9')) || digits > 12)
                _exit(4);
            if (c == '\n')
                break;
            length = length * 10 + (size_t)(c - '0');
            digits++;
        }
        if (length >= MAX_REQUEST || !(buf = malloc(length + 1)))
            _exit(4);
        if (length > 0 && read_exact(fd, buf, length) != 1)
            _exit(4);
    } else {
        capacity = 65536;
        if (!(buf = malloc(capacity + 1)))
            _exit(4);
        for (;;) {
            ssize_t n = read(fd, buf + length, capacity - length);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                _exit(4);
            if (n == 0)
                break;
            length += (size_t)n;
            if (length == capacity) {
                char *bigger;
                capacity *= 2;
                if (capacity >= MAX_REQUEST || !(bigger = realloc(buf, capacity + 1)))
                    _exit(4);
                buf = bigger;
            }
        }
    }
    buf[length] = '\0';
    *out = buf;
    *size = length;
    return 1;
}

static void define(JSContext *ctx, JSValueConst global, const char *name, JSValue value)
{
    JS_DefinePropertyValueStr(ctx, global, name, value,
                              JS_PROP_CONFIGURABLE | JS_PROP_WRITABLE);
}

/* A C string as a JSON string, malloc'ed (NULL if out of memory). JSON.stringify of a
 * primitive string looks up no toJSON: nothing of the code's runs here. */
static char *json_string(JSContext *ctx, const char *text, size_t length)
{
    JSValue str = JS_NewStringLen(ctx, text, length);
    JSValue json = JS_JSONStringify(ctx, str, JS_UNDEFINED, JS_UNDEFINED);
    const char *c = JS_IsString(json) ? JS_ToCString(ctx, json) : NULL;
    char *copy = c ? strdup(c) : NULL;
    JS_FreeCString(ctx, c);
    JS_FreeValue(ctx, json);
    JS_FreeValue(ctx, str);
    if (!copy)
        JS_FreeValue(ctx, JS_GetException(ctx));
    return copy;
}

/* A failure document of this kind, written as the input's result unless one was. */
static void write_failure(JSContext *ctx, const char *kind, const char *message,
                          const char *traceback)
{
    char *m = json_string(ctx, message, strnlen(message, 2000));
    char *t = json_string(ctx, traceback, strlen(traceback));
    size_t size = strlen(kind) + (m ? strlen(m) : 2) + (t ? strlen(t) : 2) + 64;
    char *doc = malloc(size);
    if (doc) {
        int n = snprintf(doc, size, "{\"ok\": false, \"kind\": \"%s\", \"message\": %s, "
                         "\"traceback\": %s}", kind, m ? m : "\"\"", t ? t : "\"\"");
        write_result(doc, (size_t)n);
    } else {
        static const char memory[] = "{\"ok\": false, \"kind\": \"memory\", \"message\": "
                                     "\"memory limit reached while reporting a failure\"}";
        write_result(memory, sizeof memory - 1);
    }
    free(doc);
    free(t);
    free(m);
}

/* The pending exception as a failure of this kind ("memory" when it is QuickJS's own
 * out-of-memory error); its text and, for an Error, its stack. */
static void report_exception(JSContext *ctx, const char *kind)
{
    JSValue exc = JS_GetException(ctx);
    JSValue stack = JS_UNDEFINED;
    const char *message = JS_ToCString(ctx, exc), *trace = NULL;
    char *traceback;
    if (!message)
        JS_FreeValue(ctx, JS_GetException(ctx)); /* its toString threw */
    if (JS_IsError(ctx, exc)) {
        stack = JS_GetPropertyStr(ctx, exc, "stack");
        if (JS_IsException(stack))
            JS_FreeValue(ctx, JS_GetException(ctx));
        else if (JS_IsString(stack))
            trace = JS_ToCString(ctx, stack);
    }
    if (message && JS_IsError(ctx, exc) && !strcmp(message, "InternalError: out of memory"))
        kind = "memory";
    traceback = malloc((message ? strlen(message) : 0) + (trace ? strlen(trace) : 0) + 2);
    if (traceback)
        sprintf(traceback, "%s\n%s", message ? message : "", trace ? trace : "");
    write_failure(ctx, kind, message ? message : "<an exception that cannot be printed>",
                  traceback ? traceback : "");
    free(traceback);
    JS_FreeCString(ctx, trace);
    JS_FreeValue(ctx, stack);
    JS_FreeCString(ctx, message);
    JS_FreeValue(ctx, exc);
}

/* One input: a fresh runtime; the prelude (its value: the function that writes the
 * result), then the code, then that function, called from here so the code can neither
 * call it early nor run after it. */
static void run_input(const char *prelude, size_t prelude_length, const char *code,
                      size_t code_length, const char *request, size_t request_length,
                      size_t memory_bytes)
{
    JSRuntime *rt = JS_NewRuntime();
    JSContext *ctx;
    JSValue global, parsed, args = JS_UNDEFINED, finish = JS_UNDEFINED, value;
    if (!rt)
        _exit(5);
    JS_SetMemoryLimit(rt, memory_bytes);
    JS_SetMaxStackSize(rt, STACK_BYTES);
    if (!(ctx = JS_NewContext(rt)))
        _exit(5);
    answered = 0;
    global = JS_GetGlobalObject(ctx);
    parsed = JS_ParseJSON(ctx, request, request_length, "<input>");
    if (JS_IsObject(parsed))
        args = JS_GetPropertyStr(ctx, parsed, "args");
    if (JS_IsException(parsed) || JS_IsArray(ctx, args) != 1) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        write_failure(ctx, "harness", "the request is not {\"args\": [...]}", "");
    } else {
        define(ctx, global, "__metricloom_input", JS_DupValue(ctx, args));
        define(ctx, global, "print",
               JS_NewCFunctionMagic(ctx, js_write, "print", 1, JS_CFUNC_generic_magic, 0));
        define(ctx, global, "__metricloom_result",
               JS_NewCFunctionMagic(ctx, js_write, "__metricloom_result", 1,
                                    JS_CFUNC_generic_magic, 1));
        finish = JS_Eval(ctx, prelude, prelude_length, "prelude.js", JS_EVAL_TYPE_GLOBAL);
        if (!JS_IsFunction(ctx, finish)) {
            report_exception(ctx, "harness");
        } else {
            value = JS_Eval(ctx, code, code_length, "transformer.js", JS_EVAL_TYPE_GLOBAL);
            if (JS_IsException(value)) {
                report_exception(ctx, "load");
            } else {
                JS_FreeValue(ctx, value);
                value = JS_Call(ctx, finish, JS_UNDEFINED, 0, NULL);
                if (JS_IsException(value))
                    report_exception(ctx, "exception");
            }
            JS_FreeValue(ctx, value);
        }
    }
    if (!answered)
        write_failure(ctx, "harness", "the prelude wrote no result", "");
    JS_FreeValue(ctx, finish);
    JS_FreeValue(ctx, args);
    JS_FreeValue(ctx, parsed);
    JS_FreeValue(ctx, global);
    JS_FreeContext(ctx); /* pending jobs are dropped: nothing runs after the result */
    JS_FreeRuntime(rt);
}

int main(int argc, char **argv)
{
    int in_fd, prelude_fd, code_fd;
    long memory_mb;
    char *prelude, *code, *request;
    size_t prelude_length, code_length, request_length;
    if (argc != 7 || (strcmp(argv[1], "one") && strcmp(argv[1], "batch"))) {
        fprintf(stderr, "usage: qjsrun one|batch IN_FD RESULT_FD MEMORY_MB PRELUDE_FD CODE_FD\n");
        return 2;
    }
    in_fd = atoi(argv[2]);
    result_fd = atoi(argv[3]);
    memory_mb = atol(argv[4]);
    prelude_fd = atoi(argv[5]);
    code_fd = atoi(argv[6]);
    if (memory_mb <= 0) {
        fprintf(stderr, "qjsrun: MEMORY_MB must be positive\n");
        return 2;
    }
    framed = strcmp(argv[1], "batch") == 0;
    next_request(prelude_fd, 0, &prelude, &prelude_length);
    next_request(code_fd, 0, &code, &code_length);
    close(prelude_fd);
    close(code_fd);
    do {
        if (!next_request(in_fd, framed, &request, &request_length))
            break;
        run_input(prelude, prelude_length, code, code_length, request, request_length,
                  (size_t)memory_mb << 20);
        free(request);
    } while (framed);
    return 0;
}
