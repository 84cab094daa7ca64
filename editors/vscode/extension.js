// Starts `nodedsl lsp` (the command is the `nodedsl.command` setting) for .node files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("nodedsl").get("command", ["nodedsl", "lsp"]);
  client = new LanguageClient(
    "nodedsl",
    "nodedsl language server",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "nodedsl" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
