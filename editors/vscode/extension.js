// The sfdsl extension: the .sf language, its TextMate grammar, and a client of `sfrun lsp`.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("sfdsl");
  const [command, ...args] = config.get("server.command", ["sfrun", "lsp"]);
  const serverOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "sf" },
      { scheme: "untitled", language: "sf" },
    ],
    synchronize: { configurationSection: "sfdsl" },
    initializationOptions: { importPath: config.get("importPath", []) },
  };
  client = new LanguageClient("sfdsl", "sfdsl language server", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.commands.registerCommand("sfdsl.restartServer", () => client.restart()),
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
