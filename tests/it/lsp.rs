//! `charter lsp` driven as an editor drives it: the real binary, JSON-RPC over its stdio, on a
//! copy of the example policy set. And the message loop under arbitrary input (in process).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::editor::{Editor, apply, position_of, slice, uri};
use proptest::prelude::*;
use serde_json::{Value, json};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

struct Workspace {
    root: common::Scratch,
    acme: PathBuf,
}

fn workspace(name: &str) -> Workspace {
    let root = common::scratch("lsp", name);
    let acme = root.join("acme");
    common::copy_acme_into(&acme);
    Workspace { root, acme }
}

#[test]
fn an_editor_session_on_the_example_set() {
    let ws = workspace("session");
    let mut editor = Editor::start(&ws.root);
    let capabilities = editor.initialize(&ws.root)["capabilities"].clone();
    for capability in [
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "completionProvider",
        "codeActionProvider",
        "documentFormattingProvider",
        "documentSymbolProvider",
        "renameProvider",
    ] {
        assert!(
            !capabilities[capability].is_null(),
            "{capability} is announced"
        );
    }

    // Opening one file checks the whole set: each file, the roster included, gets its list,
    // and together they are what `charter check` reports.
    let tiers_path = ws.acme.join("tiers.charter");
    let tiers = read(&tiers_path);
    editor.open(&tiers_path, &tiers);
    let (_, _, check_stderr) =
        common::charter(&ws.root, &["--error-format", "json", "check", "acme"], &[]);
    let expected = check_stderr.lines().filter(|l| l.starts_with('{')).count();
    let mut received = 0;
    for file in std::fs::read_dir(&ws.acme).unwrap() {
        let path = file.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "charter" || e == "csv")
        {
            let list = editor.diagnostics_for(&uri(&path));
            assert!(
                list.iter().all(|d| d["severity"] != 1),
                "no errors in {}: {list:?}",
                path.display()
            );
            received += list.len();
        }
    }
    assert_eq!(
        received, expected,
        "the same diagnostics as `charter check`"
    );

    // A typo: the did-you-mean diagnostic, then its quick fix, which restores the text.
    let customers_path = ws.acme.join("customers.charter");
    let customers = read(&customers_path);
    editor.open(&customers_path, &customers);
    let typo = customers.replacen("tier = pro", "tier = prp", 1);
    editor.change(&customers_path, 2, &typo);
    let diagnostics = loop {
        let list = editor.diagnostics_for(&uri(&customers_path));
        if list.iter().any(|d| d["code"] == "charter::unknown_tier") {
            break list;
        }
    };
    let unknown = diagnostics
        .iter()
        .find(|d| d["code"] == "charter::unknown_tier")
        .unwrap_or_else(|| panic!("an unknown tier diagnostic in {diagnostics:?}"));
    assert_eq!(unknown["severity"], 1);
    assert_eq!(unknown["source"], "charter");
    assert!(
        unknown["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `pro`?"),
        "{unknown}"
    );
    assert_eq!(slice(&typo, &unknown["range"]), "prp");
    let actions = editor.result(
        "textDocument/codeAction",
        json!({
            "textDocument": {"uri": uri(&customers_path)},
            "range": unknown["range"],
            "context": {"diagnostics": [unknown]},
        }),
    );
    let action = &actions[0];
    assert_eq!(action["kind"], "quickfix");
    let edits = action["edit"]["changes"][uri(&customers_path)]
        .as_array()
        .unwrap();
    assert_eq!(apply(&typo, edits), customers);
    editor.change(&customers_path, 3, &customers);
    assert!(
        editor
            .diagnostics_for(&uri(&customers_path))
            .iter()
            .all(|d| d["severity"] != 1)
    );

    // A roster is a buffer too: a typo in a row is reported at its cell as you type.
    let roster_path = ws.acme.join("customers.csv");
    let roster = read(&roster_path);
    editor.open(&roster_path, &roster);
    let typo = roster.replacen("Wonka Industries,pro,", "Wonka Industries,prp,", 1);
    editor.change(&roster_path, 2, &typo);
    let unknown = loop {
        let list = editor.diagnostics_for(&uri(&roster_path));
        if let Some(d) = list.iter().find(|d| d["code"] == "charter::unknown_tier") {
            break d.clone();
        }
    };
    assert_eq!(slice(&typo, &unknown["range"]), "prp");
    editor.change(&roster_path, 3, &roster);

    // Hover on a parameter in a tier: the value and chain of `charter explain`, and the catalog.
    let hover = editor.result(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri(&tiers_path)}, "position": position_of(&tiers, "transfer = 5 GB", 0, 2)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    let (code, explain, _) = common::charter(
        &ws.root,
        &["explain", "acme", "--tier", "pro", "transfer"],
        &[],
    );
    assert_eq!(code, 0);
    assert!(
        text.contains(explain.trim_end()),
        "hover:\n{text}\nexplain:\n{explain}"
    );
    assert!(text.contains("**transfer**"), "{text}");

    // Hover on a tier, a customer and a state.
    let hover = editor.result(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri(&customers_path)}, "position": position_of(&customers, "tier = pro", 0, 8)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("tier pro") && text.contains("`acme`") && text.contains("`oscorp`"),
        "{text}"
    );
    let hover = editor.result(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri(&customers_path)}, "position": position_of(&customers, "customer acme", 0, 10)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("state now: `"), "{text}");

    // Go to a tier's definition, from a customer block and from a roster cell.
    let definition = editor.result(
        "textDocument/definition",
        json!({"textDocument": {"uri": uri(&customers_path)}, "position": position_of(&customers, "tier = pro", 0, 8)}),
    );
    assert_eq!(definition[0]["uri"], uri(&tiers_path));
    assert_eq!(
        definition[0]["range"]["start"],
        position_of(&tiers, "tier pro extends", 0, 5)
    );
    let definition = editor.result(
        "textDocument/definition",
        json!({"textDocument": {"uri": uri(&roster_path)}, "position": position_of(&roster, ",enterprise,", 0, 3)}),
    );
    assert_eq!(
        definition[0]["range"]["start"],
        position_of(&tiers, "tier enterprise", 0, 5)
    );

    // Complete a parameter name inside a tier.
    let typing = tiers.replacen(
        "tier free extends base {}",
        "tier free extends base {\n  oper\n}",
        1,
    );
    editor.change(&tiers_path, 2, &typing);
    let completion = editor.result(
        "textDocument/completion",
        json!({"textDocument": {"uri": uri(&tiers_path)}, "position": position_of(&typing, "  oper\n", 0, 6)}),
    );
    let items = completion.as_array().unwrap();
    let operations = items
        .iter()
        .find(|i| i["label"] == "operations")
        .expect("`operations` is offered");
    assert!(!operations["detail"].is_null() && !operations["documentation"].is_null());
    editor.change(&tiers_path, 3, &tiers);

    // Format a messy buffer: what `charter fmt` makes of it.
    let messy_path = ws.acme.join("messy.charter");
    let messy = "addon   messy{operations+=1\n   transfer  +=  1 GB}\n";
    editor.open(&messy_path, messy);
    let edits = editor.result("textDocument/formatting", json!({"textDocument": {"uri": uri(&messy_path)}, "options": {"tabSize": 2, "insertSpaces": true}}));
    let mut fmt = common::charter_command(&ws.root, &["fmt", "-"]);
    fmt.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = fmt.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(messy.as_bytes())
        .unwrap();
    let formatted = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(apply(messy, edits.as_array().unwrap()), formatted);
    assert_ne!(formatted, messy);
    editor.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": uri(&messy_path)}}),
    );

    // Hover on a parameter in an add-on: what it makes of each tier.
    let addons_path = ws.acme.join("addons.charter");
    let addons = read(&addons_path);
    let hover = editor.result(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri(&addons_path)}, "position": position_of(&addons, "operations += 10_000", 0, 2)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("- `pro`: 40,000 → 50,000") && text.contains("- `free`: 1,000 → 11,000"),
        "{text}"
    );

    // Find references of an add-on: customer blocks and the roster cell that lists two.
    let references = editor.result(
        "textDocument/references",
        json!({"textDocument": {"uri": uri(&addons_path)}, "position": position_of(&addons, "addon extra_ops", 0, 7), "context": {"includeDeclaration": false}}),
    );
    let mut places: Vec<String> = references
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let path = url::Url::parse(r["uri"].as_str().unwrap())
                .unwrap()
                .to_file_path()
                .unwrap();
            assert_eq!(slice(&read(&path), &r["range"]), "extra_ops");
            path.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        [
            "customers.charter",
            "customers.charter",
            "customers.charter",
            "customers.csv"
        ]
    );

    // The outline of a file.
    let symbols = editor.result(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri(&tiers_path)}}),
    );
    let pro = symbols
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pro")
        .expect("`pro` in the outline");
    assert!(
        pro["children"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "operations")
    );

    // Semantic tokens: the first name of the file is `base`, a tier (type 0) declared there.
    let tokens = editor.result(
        "textDocument/semanticTokens/full",
        json!({"textDocument": {"uri": uri(&tiers_path)}}),
    );
    let data: Vec<u64> = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(data.len() % 5, 0);
    let start = position_of(&tiers, "tier base", 0, 5);
    assert_eq!(
        &data[..5],
        &[
            start["line"].as_u64().unwrap(),
            start["character"].as_u64().unwrap(),
            4,
            0,
            1
        ]
    );

    // Rename a tier: every edit, across files and the roster; applied, the set still checks.
    let rename = editor.result(
        "textDocument/rename",
        json!({"textDocument": {"uri": uri(&tiers_path)}, "position": position_of(&tiers, "tier pro extends", 0, 5), "newName": "professional"}),
    );
    let changes = rename["changes"].as_object().unwrap();
    let mut files: Vec<String> = changes
        .keys()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "customers.charter",
            "customers.csv",
            "rules.charter",
            "tests.charter",
            "tiers.charter"
        ]
    );
    let mut count = 0;
    for (file_uri, edits) in changes {
        let path = url::Url::parse(file_uri).unwrap().to_file_path().unwrap();
        let before = read(&path);
        for edit in edits.as_array().unwrap() {
            assert_eq!(slice(&before, &edit["range"]), "pro", "in {file_uri}");
            count += 1;
        }
        std::fs::write(&path, apply(&before, edits.as_array().unwrap())).unwrap();
    }
    let pro_words = [
        "tier = pro",
        "extends pro",
        "< pro <",
        "for pro:",
        "core, pro,",
        ",pro,",
        "tier pro:",
        "tier pro ",
    ];
    assert!(count >= pro_words.len(), "{count} edits");
    let (code, _, stderr) = common::charter(&ws.root, &["check", "acme"], &[]);
    assert_eq!(code, 0, "the renamed set checks: {stderr}");
    let (_, explain, _) = common::charter(
        &ws.root,
        &["explain", "acme", "--tier", "professional", "operations"],
        &[],
    );
    assert!(
        explain.contains("operations = 40,000") || explain.contains("operations = 40 000"),
        "{explain}"
    );

    assert_eq!(editor.shutdown_and_exit(), 0);
}

#[test]
fn renaming_a_state_edits_the_lifecycle_and_the_tests_and_the_set_still_passes_its_tests() {
    let ws = workspace("rename-state");
    let mut editor = Editor::start(&ws.root);
    editor.initialize(&ws.root);
    let lifecycle_path = ws.acme.join("lifecycle.charter");
    let lifecycle = read(&lifecycle_path);
    editor.open(&lifecycle_path, &lifecycle);
    let position = json!({"textDocument": {"uri": uri(&lifecycle_path)}, "position": position_of(&lifecycle, "state frozen", 0, 6)});
    let prepared = editor.result("textDocument/prepareRename", position.clone());
    assert_eq!(prepared["placeholder"], "frozen");
    let mut request = position.clone();
    request["newName"] = json!("lifecycle");
    assert_eq!(
        editor.request("textDocument/rename", request.clone())["error"]["code"],
        -32803,
        "a keyword is refused"
    );
    request["newName"] = json!("active");
    assert!(
        editor.request("textDocument/rename", request.clone())["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already declared")
    );
    request["newName"] = json!("suspended");
    let rename = editor.result("textDocument/rename", request);
    let mut count = 0;
    for (file_uri, edits) in rename["changes"].as_object().unwrap() {
        let path = url::Url::parse(file_uri).unwrap().to_file_path().unwrap();
        let before = read(&path);
        for edit in edits.as_array().unwrap() {
            assert_eq!(slice(&before, &edit["range"]), "frozen");
            count += 1;
        }
        std::fs::write(&path, apply(&before, edits.as_array().unwrap())).unwrap();
    }
    // The declaration, `to frozen` twice, `from frozen` twice, and the two tests that expect it.
    assert_eq!(count, 7);
    let (code, stdout, stderr) = common::charter(&ws.root, &["test", "acme"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(editor.shutdown_and_exit(), 0);
}

#[test]
fn malformed_messages_and_unknown_methods_get_errors_and_the_server_goes_on() {
    let ws = workspace("malformed");
    let mut editor = Editor::start(&ws.root);
    // Before `initialize`, requests are refused.
    let early = editor.request("textDocument/hover", json!({}));
    assert_eq!(early["error"]["code"], -32002);
    editor.initialize(&ws.root);

    editor.send_raw(b"{not json");
    let parse_error = editor.receive();
    assert_eq!(parse_error["error"]["code"], -32700);
    assert_eq!(parse_error["id"], Value::Null);

    editor.send_raw(b"[1, 2]");
    assert_eq!(editor.receive()["error"]["code"], -32600);

    let unknown = editor.request("charter/nothing", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);

    let bad = editor.request("textDocument/hover", json!({"textDocument": 7}));
    assert_eq!(bad["error"]["code"], -32602);

    // A buffer of arbitrary bytes (as text): diagnostics, and answers at every position.
    let junk_path = ws.acme.join("junk.charter");
    let junk = "tier \u{0}\u{7f}{{{ é😀 \"unterminated\n}}} = += @@ 12 GiB [";
    editor.open(&junk_path, junk);
    let diagnostics = editor.diagnostics_for(&uri(&junk_path));
    assert!(
        diagnostics.iter().any(|d| d["severity"] == 1),
        "{diagnostics:?}"
    );
    for line in 0..3 {
        for character in [0, 3, 7, 40] {
            let position = json!({"textDocument": {"uri": uri(&junk_path)}, "position": {"line": line, "character": character}});
            for method in [
                "textDocument/hover",
                "textDocument/completion",
                "textDocument/definition",
            ] {
                let response = editor.request(method, position.clone());
                assert!(response.get("result").is_some(), "{method}: {response}");
            }
        }
    }
    let formatting = editor.request("textDocument/formatting", json!({"textDocument": {"uri": uri(&junk_path)}, "options": {"tabSize": 2, "insertSpaces": true}}));
    assert_eq!(formatting["result"], Value::Null);

    // `exit` without `shutdown` is exit code 1 (LSP).
    editor.notify("exit", Value::Null);
    assert_eq!(editor.child.wait().unwrap().code(), Some(1));
}

/// One frame the property test sends.
#[derive(Clone, Debug)]
enum Frame {
    Bytes(Vec<u8>),
    Request(String, Value),
    Notification(String, Value),
    Open(String),
}

const METHODS: &[&str] = &[
    "initialize",
    "shutdown",
    "textDocument/hover",
    "textDocument/definition",
    "textDocument/references",
    "textDocument/completion",
    "textDocument/codeAction",
    "textDocument/formatting",
    "textDocument/documentSymbol",
    "textDocument/prepareRename",
    "textDocument/rename",
    "textDocument/semanticTokens/full",
    "textDocument/didChange",
    "textDocument/didClose",
    "$/cancelRequest",
    "unknown/method",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z/:.]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("textDocument".to_string()),
                    Just("uri".to_string()),
                    Just("position".to_string()),
                    Just("line".to_string()),
                    Just("character".to_string()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn frame(doc: String) -> impl Strategy<Value = Frame> {
    let position = (0u32..30, 0u32..60).prop_map(move |(line, character)| {
        json!({"textDocument": {"uri": doc.clone()}, "position": {"line": line, "character": character}, "newName": "x", "context": {"includeDeclaration": true, "diagnostics": []}, "options": {"tabSize": 2, "insertSpaces": true}})
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Frame::Bytes),
        (prop::sample::select(METHODS), json_value())
            .prop_map(|(m, p)| Frame::Request(m.to_string(), p)),
        (prop::sample::select(METHODS), position.clone())
            .prop_map(|(m, p)| Frame::Request(m.to_string(), p)),
        (prop::sample::select(METHODS), json_value())
            .prop_map(|(m, p)| Frame::Notification(m.to_string(), p)),
        prop::collection::vec(any::<char>(), 0..120)
            .prop_map(|c| Frame::Open(c.into_iter().collect())),
    ]
}

fn encode(frames: &[Frame], doc: &str) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut requests = 1; // `initialize`
    let mut push = |body: &[u8]| {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    };
    push(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"capabilities": {}}})
            .to_string()
            .as_bytes(),
    );
    for (i, frame) in frames.iter().enumerate() {
        match frame {
            Frame::Bytes(bytes) => {
                requests += 1; // a parse or invalid-request error
                push(bytes);
            }
            Frame::Request(method, params) => {
                requests += 1;
                push(json!({"jsonrpc": "2.0", "id": i + 1, "method": method, "params": params}).to_string().as_bytes());
            }
            Frame::Notification(method, params) => {
                push(json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string().as_bytes());
            }
            Frame::Open(text) => push(
                json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": doc, "languageId": "charter", "version": 1, "text": text}}})
                    .to_string()
                    .as_bytes(),
            ),
        }
    }
    (out, requests)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Whatever arrives, the loop reads to the end without panicking, and answers every
    /// request — and every frame that is not a message — exactly once.
    #[test]
    fn the_message_loop_answers_every_request_and_never_crashes(
        frames in prop::collection::vec(frame("DOC".to_string()), 1..12)
    ) {
        let ws = WORKSPACE.with(|w| w.root.to_path_buf());
        let doc = uri(&ws.join("acme/prop.charter"));
        let frames: Vec<Frame> = frames
            .into_iter()
            .map(|f| match f {
                Frame::Request(m, p) => Frame::Request(m, replace_doc(p, &doc)),
                other => other,
            })
            .collect();
        let (bytes, requests) = encode(&frames, &doc);
        let mut output = Vec::new();
        let exit = charter::lsp::serve(std::io::Cursor::new(bytes), &mut output);
        prop_assert!(exit.is_ok());
        let answers = responses(&output);
        // Bytes that happen to be a notification get no answer; everything else gets one.
        let bytes_frames = frames.iter().filter(|f| matches!(f, Frame::Bytes(_))).count();
        prop_assert!(answers <= requests && answers + bytes_frames >= requests, "{answers} answers to {requests} requests");
    }
}

thread_local! {
    /// One workspace per test thread, deleted when the thread ends.
    static WORKSPACE: Workspace =
        workspace(&format!("prop-{:?}", std::thread::current().id()).replace(['(', ')'], ""));
}

fn replace_doc(value: Value, doc: &str) -> Value {
    match value {
        Value::String(s) if s == "DOC" => Value::String(doc.to_string()),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| replace_doc(v, doc)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, replace_doc(v, doc)))
                .collect(),
        ),
        other => other,
    }
}

/// How many responses (messages with an `id` and a result or an error) the output holds.
fn responses(output: &[u8]) -> usize {
    let mut reader = BufReader::new(output);
    let mut count = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            return count;
        }
        let length: usize = line
            .trim_end()
            .strip_prefix("Content-Length: ")
            .unwrap()
            .parse()
            .unwrap();
        let mut blank = String::new();
        reader.read_line(&mut blank).unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let message: Value = serde_json::from_slice(&body).unwrap();
        if message.get("result").is_some() || message.get("error").is_some() {
            count += 1;
        }
    }
}

/// The VS Code grammar highlights every license parameter of the catalog, and parses as JSON.
#[test]
fn the_editor_grammar_knows_every_parameter() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("editors/vscode/syntaxes/charter.tmLanguage.json");
    let grammar: Value = serde_json::from_str(&read(&path)).unwrap();
    let pattern = grammar["repository"]["parameter"]["match"]
        .as_str()
        .unwrap();
    let words: Vec<&str> = pattern
        .trim_start_matches("\\b(")
        .trim_end_matches(")\\b")
        .split('|')
        .collect();
    let catalog: Vec<&str> = charter::model::catalog::names().collect();
    assert_eq!(words, catalog);
}

/// The server reads the policy files on disk as `charter check` does: a `.charter` symlink that
/// leads out of the folder is not read (its target's text never reaches the editor), and says so.
#[cfg(unix)]
#[test]
fn a_policy_file_linked_from_outside_the_folder_is_refused_not_read() {
    let ws = workspace("confined");
    let outside = ws.root.join("outside.charter");
    std::fs::write(&outside, "tier leaked extends pro {\n  operations = 1\n}\n").unwrap();
    let link = ws.acme.join("linked.charter");
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    let mut editor = Editor::start(&ws.root);
    editor.initialize(&ws.root);
    let tiers_path = ws.acme.join("tiers.charter");
    editor.open(&tiers_path, &read(&tiers_path));
    let diagnostics = editor.diagnostics_for(&common::editor::uri(&link));
    assert!(
        diagnostics
            .iter()
            .any(|d| d["code"] == "charter::policy_file_refused"
                && d["message"].as_str().unwrap().contains("outside")),
        "{diagnostics:#?}"
    );
    let symbols = editor.result(
        "textDocument/documentSymbol",
        serde_json::json!({"textDocument": {"uri": common::editor::uri(&link)}}),
    );
    assert!(
        !symbols.to_string().contains("leaked"),
        "the linked file's text was read: {symbols}"
    );
    assert_eq!(editor.shutdown_and_exit(), 0);
}
