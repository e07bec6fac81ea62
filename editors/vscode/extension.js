// The Charter extension: starts `charter lsp` on stdio for `.charter` files and the CSV
// rosters beside them; the server does the rest.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("charter").get("path") || "charter";
  const server = { command, args: ["lsp"], transport: TransportKind.stdio };
  client = new LanguageClient(
    "charter",
    "Charter",
    { run: server, debug: server },
    {
      documentSelector: [
        { scheme: "file", language: "charter" },
        { scheme: "file", pattern: "**/*.csv" },
      ],
      synchronize: {
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{charter,csv}"),
      },
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
