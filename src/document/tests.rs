use super::workspace::{self, ExplorerView, Workspace};
use super::*;
use crate::util::TempDir;

/// A small `analyze --json` document (two tokens, one run) naming `clip`.
fn analysis_json(clip: &str) -> String {
    format!(
        r#"{{"model":"toy","runtime":{{"device":"cpu","dtype":"f32"}},
        "clip":{{"path":{clip:?},"duration_s":0.04,"windows":1,"analyzed_s":0.04}},
        "tokens":{{"count":2,"seconds_per_token":0.02}},"scores":[0.25,0.75],
        "score_source":{{"layer":3,"layers":4,"head_reduce":"mean"}},"encode_ms":1.0,
        "runs":[{{"method":"topk","keep":0.5,"segments":null,"k":1,"kept":[1],"tail_tokens":0,
        "text":" hello","decode_ms":2.0,"prefill_ms":null,"decode_ms_per_token":null,
        "generated_tokens":1,"token_ids":[7],"looped":false,"stopped_on_loop":false}}]}}"#
    )
}

#[test]
fn an_analysis_is_told_apart_by_its_content() {
    let dir = TempDir::new("doc").unwrap();
    let p = dir
        .file("out.txt", analysis_json("a.wav").as_bytes())
        .unwrap();
    assert!(is_document(&p));
    let Opened::Analysis(a) = open(&p).unwrap() else {
        panic!("not an analysis")
    };
    assert_eq!(a.runs[0].text, " hello");
    assert_eq!(a.report.model_label(), "toy, cpu f32");
}

#[test]
fn bad_files_say_what_is_wrong_with_them() {
    let dir = TempDir::new("doc").unwrap();
    let full = analysis_json("a.wav");
    let cases: [(&str, &[u8], &str); 6] = [
        ("empty.json", b"  \n", "is empty"),
        ("binary.json", &[0xff, 0xfe, 0x00, 0x7b], "not UTF-8"),
        ("text.json", b"{ this is not json", "not JSON"),
        (
            "cut.json",
            &full.as_bytes()[..full.len() / 2],
            "is cut short",
        ),
        (
            "other.json",
            br#"{"name": "package", "version": "1"}"#,
            "not a prunescope document",
        ),
        (
            "typo.json",
            br#"{"scores": [1], "runs": "none"}"#,
            "is not a valid analysis",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = dir.file(name, bytes).unwrap();
        let e = open(&p).err().unwrap_or_else(|| panic!("{name} opened"));
        let msg = e.to_string();
        assert!(msg.contains(want) && msg.contains(name), "{name}: {msg}");
    }
    let e = open(&dir.path().join("missing.json")).err().unwrap();
    assert!(e.to_string().starts_with("cannot read"), "{e}");
}

#[test]
fn a_file_cut_inside_a_number_or_a_word_is_cut_short() {
    // serde calls these syntax errors at the last character; cut anywhere, a file is cut short
    // (the GUI test that cut an exported document at a third found it, by where the cut fell).
    let dir = TempDir::new("doc").unwrap();
    for (i, text) in [
        "{\"scores\": [1.2e",
        "{\"scores\": [1.",
        "{\"scores\": [-",
        "{\"scores\": [tru",
        "{\"scores\": [1, 2",
        "{\"scores\": [1, 2]\n,\n  \"ru",
    ]
    .iter()
    .enumerate()
    {
        let p = dir.file(&format!("cut{i}.json"), text.as_bytes()).unwrap();
        let msg = open(&p).err().unwrap().to_string();
        assert!(msg.contains("is cut short"), "{text}: {msg}");
    }
    // A syntax error before the end is not a cut.
    let p = dir
        .file("mid.json", br#"{"scores": [1.2e], "runs": []}"#)
        .unwrap();
    let msg = open(&p).err().unwrap().to_string();
    assert!(msg.contains("not JSON"), "{msg}");
}

fn saved(dir: &TempDir, clip: &[u8], embed: bool) -> (PathBuf, PathBuf) {
    let clip_path = dir.file("clip.wav", clip).unwrap();
    let a = serde_json::from_str(&analysis_json(&clip_path.display().to_string())).unwrap();
    let view = ExplorerView {
        keep_percent: 37.0,
        focused: Some("topk@0.5".into()),
        ..ExplorerView::default()
    };
    let ws = Workspace::new(a, view, clip, embed);
    let p = dir.path().join("session.prunescope");
    ws.write(&p).unwrap();
    (p, clip_path)
}

#[test]
fn a_workspace_carries_its_clip_and_reads_back_the_same() {
    let dir = TempDir::new("ws").unwrap();
    let bytes = b"RIFF not really audio, only bytes";
    let (p, clip) = saved(&dir, bytes, true);
    std::fs::remove_file(&clip).unwrap();
    let Opened::Workspace(w) = open(&p).unwrap() else {
        panic!("not a workspace")
    };
    assert_eq!(w.prunescope_workspace, workspace::FORMAT);
    assert_eq!(w.explorer.keep_percent, 37.0);
    assert_eq!(w.model.label, "toy, cpu f32");
    assert_eq!(w.clip.sha256, workspace::sha256(bytes));
    // SHA-256 of the empty string, a known vector.
    assert_eq!(
        workspace::sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let embedded = w.embedded_clip(&p).unwrap().unwrap();
    assert_eq!(embedded, bytes);
    let found = locate_clip(&p, &w.clip.path, Some(&w.clip.sha256), Some(embedded));
    assert!(matches!(found.source, Some(ClipSource::Bytes { .. })));
    // No partial file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn an_altered_clip_is_refused_and_a_moved_one_is_found() {
    let dir = TempDir::new("ws").unwrap();
    let (p, clip) = saved(&dir, b"the original bytes", false);
    let Opened::Workspace(w) = open(&p).unwrap() else {
        panic!("not a workspace")
    };
    assert!(w.clip.embedded.is_none());
    let here = locate_clip(&p, &w.clip.path, Some(&w.clip.sha256), None);
    assert!(matches!(here.source, Some(ClipSource::Path(ref x)) if *x == clip));
    std::fs::write(&clip, b"other bytes").unwrap();
    let changed = locate_clip(&p, &w.clip.path, Some(&w.clip.sha256), None);
    assert!(changed.source.is_none());
    assert!(changed.note.unwrap().contains("SHA-256 differs"));
    // The document names a path that is gone; a file of that name beside it is taken.
    let moved = locate_clip(&clip, "/nowhere/clip.wav", None, None);
    assert!(moved.note.unwrap().contains("beside the document"));
    let gone = locate_clip(&p, "/nowhere/else.wav", None, None);
    assert!(gone.source.is_none());
    assert!(gone.note.unwrap().contains("/nowhere/else.wav not found"));
}

#[test]
fn another_format_is_refused_by_its_version() {
    let dir = TempDir::new("ws").unwrap();
    let newer = dir
        .file(
            "newer.prunescope",
            br#"{"prunescope_workspace": 2, "written_by": "prunescope 9.0", "whatever": 1}"#,
        )
        .unwrap();
    let e = open(&newer).err().unwrap().to_string();
    assert!(
        e.contains("format 2") && e.contains("prunescope 9.0") && e.contains("update prunescope"),
        "{e}"
    );
    let older = dir
        .file("older.prunescope", br#"{"prunescope_workspace": 0}"#)
        .unwrap();
    let e = open(&older).err().unwrap().to_string();
    assert!(
        e.contains("format 0") && e.contains("reads format 1"),
        "{e}"
    );
    // Altered embedded bytes are caught by the clip's SHA-256.
    let (p, _) = saved(&dir, b"abc", true);
    let text = std::fs::read_to_string(&p).unwrap();
    let b64 = base64::encode(b"abc");
    std::fs::write(&p, text.replace(&b64, &base64::encode(b"abd"))).unwrap();
    let Opened::Workspace(w) = open(&p).unwrap() else {
        panic!("not a workspace")
    };
    let e = w.embedded_clip(&p).err().unwrap().to_string();
    assert!(e.contains("was altered"), "{e}");
}

#[test]
fn a_model_directory_is_not_a_document() {
    let dir = TempDir::new("doc").unwrap();
    dir.file("model.bin", b"x").unwrap();
    assert!(!is_document(dir.path()));
    let e = open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("is a model directory"), "{e}");
    let empty = TempDir::new("doc").unwrap();
    let e = open(empty.path()).err().unwrap().to_string();
    assert!(e.contains("holds no eval results"), "{e}");
}

#[test]
fn a_document_past_the_limit_is_refused_before_it_is_read() {
    let dir = TempDir::new("doc").unwrap();
    let p = dir.path().join("huge.json");
    // Sparse: no disk is used, and nothing may read it.
    crate::util::sparse_file(&p, b"", MAX_DOCUMENT + 1);
    let e = open(&p).err().unwrap().to_string();
    assert!(
        e.contains("at most 2147483648 bytes") && e.contains("huge.json"),
        "{e}"
    );
}
