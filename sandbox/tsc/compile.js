// Type-checks and compiles one TypeScript transformer, inside the sandbox container, under
// QuickJS with its std module (this file is the project's, not the transformer's: the
// transformer is only data to the compiler, which never runs it).
//
//   qjs --std -m compile.js REQUEST   REQUEST: JSON {"source": "...", "signature": "MetricTransform"}
//
// Prints one JSON line: {"javascript": "..." | null, "diagnostics": ["line 3: ...", ...]}.
// Strict mode, against metricloom.d.ts (the design's DataPoint, ChartConfig and the two
// transform signatures); `transform` must have the signature the request names. Nothing is
// emitted when there is any diagnostic.
import * as std from "std";

const HERE = "/opt/tsc/";
const LIB = HERE + "lib/";
const SOURCE = "/transformer.ts";
const CONTRACTS = "/metricloom.d.ts";
const SIGNATURES = ["MetricTransform", "ChartTransform"];

function answer(javascript, diagnostics) {
  std.out.puts(JSON.stringify({ javascript: javascript, diagnostics: diagnostics }) + "\n");
  std.out.flush();
}

function main() {
  const request = JSON.parse(std.loadFile(scriptArgs[1]));
  const signature = request.signature;
  if (SIGNATURES.indexOf(signature) < 0) {
    answer(null, ["unknown signature " + signature + "; one of " + SIGNATURES.join(", ")]);
    return;
  }
  std.loadScript(LIB + "typescript.js"); // defines the global `ts`
  const source = String(request.source);
  const lines = source.split("\n").length;
  // The signature check, on a line after the code: a mismatch is reported there.
  const checked = source + "\n;const __metricloomSignature: " + signature + " = transform;\n";
  const files = { [SOURCE]: checked, [CONTRACTS]: std.loadFile(HERE + "metricloom.d.ts") };
  const options = {
    strict: true,
    noEmitOnError: true,
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.CommonJS,
    lib: ["lib.es2020.d.ts"],
    types: [],
    noLib: false,
    skipLibCheck: true,
    newLine: ts.NewLineKind.LineFeed,
  };
  const read = (name) => {
    if (name in files) return files[name];
    const text = std.loadFile(LIB + name.replace(/^\//, ""));
    return text === null ? undefined : text;
  };
  let javascript = null;
  const host = {
    getSourceFile: (name, version) => {
      const text = read(name);
      return text === undefined ? undefined : ts.createSourceFile(name, text, version);
    },
    getDefaultLibFileName: () => "/lib.es2020.d.ts",
    writeFile: (name, text) => {
      if (name.endsWith(".js")) javascript = text;
    },
    getCurrentDirectory: () => "/",
    getDirectories: () => [],
    fileExists: (name) => read(name) !== undefined,
    readFile: read,
    getCanonicalFileName: (name) => name,
    useCaseSensitiveFileNames: () => true,
    getNewLine: () => "\n",
  };
  const program = ts.createProgram([SOURCE, CONTRACTS], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (!d.file || d.start === undefined) return text;
    const line = d.file.getLineAndCharacterOfPosition(d.start).line + 1;
    if (d.file.fileName === SOURCE && line > lines) {
      return "transform does not have the " + signature + " signature: " + text;
    }
    return "line " + line + ": " + text;
  });
  if (diagnostics.length === 0) program.emit();
  answer(diagnostics.length ? null : javascript, diagnostics);
}

try {
  main();
} catch (e) {
  answer(null, ["the compiler failed: " + String(e)]);
}
