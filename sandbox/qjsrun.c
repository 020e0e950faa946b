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
 *   qjsrun one|batch IN_FD RESULT_FD MEMORY_MB SCRIPT_FD
 *
 * SCRIPT_FD holds the harness's prelude, the code and its epilogue as one script. Each input
 * is a JSON request {"args": [...]} on IN_FD: the whole of it in "one" mode, or a decimal
 * length, a newline and that many bytes in "batch" mode (EOF ends the batch). Before the
 * script runs, the runtime's globals hold three things the prelude takes and removes:
 * __metricloom_input (the args), print (writes its text and a newline to stdout, the
 * harness's capture pipe) and __metricloom_result (writes the result document to
 * RESULT_FD, once per input; length-prefixed in "batch" mode). When the script throws
 * before a result was written, the runner writes a "load" (or "memory") failure itself.
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

/* The script threw before it wrote a result: a "load" failure (or "memory"), in JSON. */
static void report_load_failure(JSContext *ctx)
{
    static const char memory[] =
        "{\"ok\": false, \"kind\": \"memory\", \"message\": \"memory limit reached while loading\"}";
    static const char unknown[] =
        "{\"ok\": false, \"kind\": \"load\", \"message\": \"the code failed to load\"}";
    JSValue exc = JS_GetException(ctx);
    JSValue doc = JS_UNDEFINED, text = JS_UNDEFINED;
    const char *message = JS_ToCString(ctx, exc);
    if (!message || strstr(message, "out of memory")) {
        JS_FreeCString(ctx, message);
        JS_FreeValue(ctx, exc);
        write_result(memory, sizeof memory - 1);
        return;
    }
    doc = JS_NewObject(ctx);
    if (JS_IsObject(doc)) {
        JSValue stack = JS_IsObject(exc) ? JS_GetPropertyStr(ctx, exc, "stack") : JS_UNDEFINED;
        const char *trace = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
        char *traceback = malloc(strlen(message) + (trace ? strlen(trace) : 0) + 2);
        if (traceback) {
            strcpy(traceback, message);
            strcat(traceback, "\n");
            if (trace)
                strcat(traceback, trace);
            JS_SetPropertyStr(ctx, doc, "traceback", JS_NewString(ctx, traceback));
            free(traceback);
        }
        JS_FreeCString(ctx, trace);
        JS_FreeValue(ctx, stack);
        JS_SetPropertyStr(ctx, doc, "ok", JS_FALSE);
        JS_SetPropertyStr(ctx, doc, "kind", JS_NewString(ctx, "load"));
        JS_SetPropertyStr(ctx, doc, "message", JS_NewStringLen(ctx, message,
                                                               strnlen(message, 2000)));
        text = JS_JSONStringify(ctx, doc, JS_UNDEFINED, JS_UNDEFINED);
    }
    if (JS_IsString(text)) {
        size_t length;
        const char *json = JS_ToCStringLen(ctx, &length, text);
        if (json)
            write_result(json, length);
        JS_FreeCString(ctx, json);
    }
    if (!answered)
        write_result(unknown, sizeof unknown - 1);
    JS_FreeValue(ctx, text);
    JS_FreeValue(ctx, doc);
    JS_FreeCString(ctx, message);
    JS_FreeValue(ctx, exc);
}

static void run_input(const char *script, size_t script_length, const char *request,
                      size_t request_length, size_t memory_bytes)
{
    JSRuntime *rt = JS_NewRuntime();
    JSContext *ctx;
    JSValue global, parsed, value;
    if (!rt)
        _exit(5);
    JS_SetMemoryLimit(rt, memory_bytes);
    JS_SetMaxStackSize(rt, STACK_BYTES);
    if (!(ctx = JS_NewContext(rt)))
        _exit(5);
    answered = 0;
    global = JS_GetGlobalObject(ctx);
    parsed = JS_ParseJSON(ctx, request, request_length, "<input>");
    if (JS_IsException(parsed)) {
        report_load_failure(ctx); /* the harness's own request; a memory limit, in practice */
    } else {
        define(ctx, global, "__metricloom_input", JS_GetPropertyStr(ctx, parsed, "args"));
        define(ctx, global, "print",
               JS_NewCFunctionMagic(ctx, js_write, "print", 1, JS_CFUNC_generic_magic, 0));
        define(ctx, global, "__metricloom_result",
               JS_NewCFunctionMagic(ctx, js_write, "__metricloom_result", 1,
                                    JS_CFUNC_generic_magic, 1));
        value = JS_Eval(ctx, script, script_length, "transformer.js", JS_EVAL_TYPE_GLOBAL);
        if (JS_IsException(value))
            report_load_failure(ctx);
        JS_FreeValue(ctx, value);
    }
    JS_FreeValue(ctx, parsed);
    JS_FreeValue(ctx, global);
    JS_FreeContext(ctx); /* pending jobs are dropped: nothing runs after the result */
    JS_FreeRuntime(rt);
}

int main(int argc, char **argv)
{
    int in_fd, script_fd;
    long memory_mb;
    char *script, *request;
    size_t script_length, request_length;
    if (argc != 6 || (strcmp(argv[1], "one") && strcmp(argv[1], "batch"))) {
        fprintf(stderr, "usage: qjsrun one|batch IN_FD RESULT_FD MEMORY_MB SCRIPT_FD\n");
        return 2;
    }
    in_fd = atoi(argv[2]);
    result_fd = atoi(argv[3]);
    memory_mb = atol(argv[4]);
    script_fd = atoi(argv[5]);
    if (memory_mb <= 0) {
        fprintf(stderr, "qjsrun: MEMORY_MB must be positive\n");
        return 2;
    }
    framed = strcmp(argv[1], "batch") == 0;
    next_request(script_fd, 0, &script, &script_length);
    close(script_fd);
    do {
        if (!next_request(in_fd, framed, &request, &request_length))
            break;
        run_input(script, script_length, request, request_length, (size_t)memory_mb << 20);
        free(request);
    } while (framed);
    return 0;
}
