// Grammar tests with vscode-tmgrammar-test: the unit tests in tests/*.test.sf, and every shipped recipe
// (../../recipes/*.sf, or the directories given as arguments) with no `invalid` scope on any character.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");

const here = __dirname;
const root = path.resolve(here, "..");
const dirs = process.argv.slice(2).length ? process.argv.slice(2) : [path.resolve(root, "../../recipes")];
const out = fs.mkdtempSync(path.join(os.tmpdir(), "sf-grammar-"));
const grammar = path.join(root, "syntaxes", "sf.tmLanguage.json");

// Every `invalid...` scope the grammar can give (the test compares whole scope names).
function invalidScopes(node, found = new Set()) {
  if (Array.isArray(node)) node.forEach((item) => invalidScopes(item, found));
  else if (node && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "name" && typeof value === "string" && value.startsWith("invalid")) found.add(value);
      else invalidScopes(value, found);
    }
  }
  return found;
}
const invalid = [...invalidScopes(JSON.parse(fs.readFileSync(grammar, "utf8")))].join(" ");
if (!invalid) {
  console.error("the grammar gives no invalid scope: nothing to test against");
  process.exit(1);
}

// Each source line is followed by assertions that none of its characters has an `invalid` scope.
function noInvalid(file) {
  const lines = [`# SYNTAX TEST "source.sf" "${path.basename(file)} has no invalid scopes"`];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    lines.push(line);
    if (line.length > 0) lines.push(`# <- - ${invalid}`);
    if (line.length > 1) lines.push("#" + "^".repeat(line.length - 1) + ` - ${invalid}`);
  }
  return lines.join("\n");
}

let count = 0;
for (const dir of dirs) {
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".sf")).sort()) {
    fs.writeFileSync(path.join(out, name), noInvalid(path.join(dir, name)));
    count += 1;
  }
}
if (count === 0) {
  console.error(`no .sf files in ${dirs.join(", ")}`);
  process.exit(1);
}
const bin = path.join(root, "node_modules", "vscode-tmgrammar-test", "dist", "unit.js");
const run = spawnSync(process.execPath, [bin, "-c", "-g", grammar, path.join(here, "*.test.sf"),
                                         path.join(out, "*.sf")], { stdio: "inherit", cwd: root });
fs.rmSync(out, { recursive: true, force: true });
console.log(`grammar test: ${count} recipe file(s) and the unit tests in tests/`);
process.exit(run.status === null ? 1 : run.status);
