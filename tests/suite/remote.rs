//! The remote model through the binary: `analyze --remote "prunescope serve --stdio"` gives
//! the local document, and every way a link can fail (no such command, a server that exits at
//! once, prints text, sends random bytes, claims a 1 GB frame, speaks another protocol version,
//! is killed mid-decode; a client that sends garbage) is one clear line on each side, no panic.
//! In-process, a [`Remote`] over pipes to a served fake model cancels mid-decode as locally.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::common::{self, assert_one_line_error, TempDir};
use prunescope::engine::worker::{ClipSource, Decode, Event, KeyedRun, Request};
use prunescope::engine::{Decoding, ModelHost, Plan, RunMethod, RunSpec, Session};
use prunescope::model::fake::FakeModel;
use prunescope::prune::{Method, Params};
use prunescope::remote::frame::{self, MAGIC};
use prunescope::remote::{Hello, Remote, RemoteOptions};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_prunescope")
}

fn jfk() -> PathBuf {
    common::root().join("assets/jfk.wav")
}

#[test]
fn remote_analyze_gives_the_local_document() {
    let clip = jfk();
    let clip = clip.to_str().unwrap();
    let server = format!("'{}' serve --stdio", bin());
    for extra in [
        &["--words", "--attention", "--layer-scores"][..],
        &[
            "--method",
            "segmentwise,visionzip,atome,fastv",
            "--keep",
            "0.3",
            "--score-layer",
            "1",
            "--head-reduce",
            "max",
        ][..],
    ] {
        let mut args = vec!["analyze", clip, "--json"];
        args.extend_from_slice(extra);
        let local = common::json_doc(&args);
        args.extend_from_slice(&["--remote", &server]);
        let remote = common::json_doc(&args);
        assert!(local["runs"].as_array().unwrap().len() >= 4);
        assert_eq!(common::untimed(local), common::untimed(remote), "{extra:?}");
    }
}

/// `analyze --remote COMMAND` on the demo clip.
fn analyze_remote(command: &str) -> std::process::Output {
    common::prunescope(&[
        "analyze",
        jfk().to_str().unwrap(),
        "--method",
        "topk",
        "--keep",
        "0.5",
        "--remote",
        command,
    ])
}

/// A file of bytes a fake server writes before it sleeps (the client must end the link).
fn said(t: &TempDir, name: &str, bytes: &[u8]) -> String {
    let p = t.file(name, bytes);
    format!("cat '{}'; sleep 20", p.display())
}

fn hello(protocol: u32) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    let h = Hello {
        protocol,
        version: "9.9.9".into(),
    };
    frame::write_frame(&mut b, &h).unwrap();
    b
}

#[test]
fn every_broken_link_is_one_clear_line() {
    let t = TempDir::new();
    let mut gigabyte = MAGIC.to_vec();
    gigabyte.extend_from_slice(&(1u32 << 30).to_le_bytes());
    let mut garbage = hello(prunescope::remote::PROTOCOL);
    garbage.extend_from_slice(&5u32.to_le_bytes());
    garbage.extend_from_slice(&[0xc1, 0xff, 0x00, 0x13, 0x37]);
    let killed = format!(
        "exec 3<&0; '{}' serve --stdio --fake-model 400 <&3 & sleep 2; kill -9 $!; wait $!",
        bin()
    );
    let cases = [
        (
            "prunescope-no-such-command --stdio".to_string(),
            "(exit status 127: command not found); it said: ",
        ),
        ("true".into(), "the remote model ended (exit status 0)"),
        (
            "echo 'Welcome to gpu-host!'; sleep 20".into(),
            "does not speak the prunescope protocol: it wrote `Welcome to gpu-host!`",
        ),
        (
            "head -c 4096 /dev/urandom; sleep 20".into(),
            "does not speak the prunescope protocol",
        ),
        (
            said(&t, "gigabyte", &gigabyte),
            "a frame of 1073741824 bytes, over the limit of 536870912",
        ),
        (
            said(&t, "v2", &hello(2)),
            "protocol version mismatch: the server speaks version 2 (prunescope 9.9.9), this client version 1",
        ),
        (said(&t, "garbage", &garbage), "malformed frame"),
        // (A background job's stdin is /dev/null unless it is given another.)
        (killed, "the remote model ended (exit status 137)"),
        (
            format!("'{}' serve --stdio --model /nonexistent/model", bin()),
            "the server refused: cannot load model /nonexistent/model",
        ),
    ];
    for (command, needle) in cases {
        let t0 = std::time::Instant::now();
        let out = analyze_remote(&command);
        assert_one_line_error(&out, needle);
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{command}: too slow"
        );
    }
}

/// Runs `serve --stdio` on `input`; its output and stderr.
fn serve_with(input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--stdio", "--fake-model", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The server may cut the link before it has read everything.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn a_server_cuts_off_a_client_that_breaks_the_protocol() {
    let mut gigabyte = hello(prunescope::remote::PROTOCOL);
    gigabyte.extend_from_slice(&(1u32 << 30).to_le_bytes());
    let mut garbage = hello(prunescope::remote::PROTOCOL);
    garbage.extend_from_slice(&4u32.to_le_bytes());
    garbage.extend_from_slice(&[0xc1, 0xc1, 0xc1, 0xc1]);
    let cases: [(&[u8], &str); 4] = [
        (
            b"GET / HTTP/1.1\r\n",
            "the client does not speak the prunescope protocol: it wrote `GET / HTTP/1.1`",
        ),
        (
            &hello(7),
            "the client speaks version 7 (prunescope 9.9.9), this server version 1",
        ),
        (&gigabyte, "the client sent a frame of 1073741824 bytes"),
        (&garbage, "the client sent a malformed frame"),
    ];
    for (input, needle) in cases {
        let out = serve_with(input);
        assert_one_line_error(&out, needle);
        // Its output is the protocol's: the magic first, whatever else follows.
        assert!(out.stdout.starts_with(&MAGIC));
    }
    // A client that says hello and leaves: the server ends cleanly.
    let out = serve_with(&hello(prunescope::remote::PROTOCOL));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A served fake model in this process, reached through pipes.
fn piped_server(step: Duration) -> Remote {
    let (client_read, server_write) = std::io::pipe().unwrap();
    let (server_read, client_write) = std::io::pipe().unwrap();
    std::thread::spawn(move || {
        let load = move || Ok(Box::new(FakeModel::new(step)) as Box<_>);
        let _ = prunescope::remote::serve(server_read, server_write, load);
    });
    Remote::over(
        "pipe",
        client_read,
        client_write,
        RemoteOptions::default(),
        |_| {},
    )
}

fn keyed(m: Method, keep: f64) -> KeyedRun {
    let spec = RunSpec {
        method: RunMethod::Prune(m),
        keep,
    };
    KeyedRun::new(spec, &Params::default(), &Decoding::default())
}

#[test]
fn cancel_stops_a_remote_decode_midway_and_the_next_request_runs() {
    let remote = piped_server(Duration::from_millis(30));
    let cancel = AtomicBool::new(false);
    let mut session = Session::open(&remote, &cancel).unwrap();
    // The session encodes the clip; then a long decode is cancelled mid-way.
    let plan = Plan::grid(
        &[RunMethod::Prune(Method::TopK)],
        &[0.5],
        Params::default(),
        Decoding::default(),
    );
    let a = session
        .analyze(
            ClipSource::Path(jfk()),
            &plan,
            Default::default(),
            &cancel,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(a.report.tokens.count, 550);
    let runs = vec![
        keyed(Method::Full, 1.0),
        keyed(Method::TopK, 0.5),
        keyed(Method::Random, 0.5),
    ];
    remote.send(Request::Decode(Decode {
        job: 100,
        clip: None,
        runs,
        first: 1,
        params: Params::default(),
        decoding: Decoding::default(),
    }));
    std::thread::sleep(Duration::from_millis(100));
    remote.cancel();
    remote.send(Request::Decode(Decode {
        job: 101,
        clip: None,
        runs: vec![keyed(Method::Segmentwise, 0.25)],
        first: 0,
        params: Params::default(),
        decoding: Decoding::default(),
    }));
    let mut finished = Vec::new();
    let mut cells = Vec::new();
    let t0 = std::time::Instant::now();
    while finished.len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(60), "{finished:?}");
        match remote.recv_timeout(Duration::from_secs(1)) {
            Some(Event::DecodeFinished { job, cancelled, .. }) => finished.push((job, cancelled)),
            Some(Event::CellDone { job, result, .. }) => cells.push((job, result.method)),
            Some(Event::Lost(e)) => panic!("{e}"),
            _ => {}
        }
    }
    assert_eq!(finished, vec![(100, true), (101, false)]);
    assert!(cells.contains(&(101, RunMethod::Prune(Method::Segmentwise))));
    assert!(cells.iter().filter(|c| c.0 == 100).count() < 3);
    let (sent, received) = remote.bytes();
    assert!(sent > 100_000 && received > 10_000, "{sent} {received}");
}

/// What a served fake model says when asked to analyse `clip` (its vanilla run).
fn remote_clip_error(clip: PathBuf) -> String {
    let remote = piped_server(Duration::ZERO);
    let cancel = AtomicBool::new(false);
    let mut session = Session::open(&remote, &cancel).unwrap();
    let plan = Plan::grid(
        &[RunMethod::Vanilla],
        &[1.0],
        Params::default(),
        Decoding::default(),
    );
    session
        .analyze(
            ClipSource::Path(clip),
            &plan,
            Default::default(),
            &cancel,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string()
}

#[test]
fn a_clip_that_cannot_be_read_or_decoded_is_an_error_naming_it() {
    let t = TempDir::new();
    let bad = t.file("bad.wav", b"RIFF\x10\x00\x00\x00WAVEnot really");
    for clip in [bad, Path::new("/nonexistent/clip.wav").to_path_buf()] {
        let e = remote_clip_error(clip.clone());
        assert!(e.contains(clip.to_str().unwrap()), "{e}");
    }
}

/// An OpenSSH server of its own on 127.0.0.1 (scripts/local-sshd), stopped when dropped.
struct LocalSshd {
    child: std::process::Child,
    _dir: TempDir,
    /// The ssh command line that reaches it, without a remote command.
    ssh: String,
}

impl LocalSshd {
    fn start() -> LocalSshd {
        let dir = TempDir::new();
        let child = std::process::Command::new(common::root().join("scripts/local-sshd"))
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/local-sshd runs");
        let file = dir.0.join("ssh");
        let t0 = std::time::Instant::now();
        let ssh = loop {
            if let Ok(s) = std::fs::read_to_string(&file) {
                break s.trim().to_string();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "scripts/local-sshd wrote no ssh command: is openssh-server installed (scripts/setup-system --test)?"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let sshd = LocalSshd {
            child,
            _dir: dir,
            ssh,
        };
        // Until it listens.
        loop {
            let ok = std::process::Command::new("sh")
                .args(["-c", &format!("{} true", sshd.ssh)])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return sshd;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "sshd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn remote_analyze_over_ssh_to_localhost_gives_the_local_document() {
    let sshd = LocalSshd::start();
    // ssh hands the server none of our environment: the model's folder goes on its command line.
    let server = format!(
        "{} 'PRUNESCOPE_MODEL={} {} serve --stdio'",
        sshd.ssh,
        common::model_dir().display(),
        bin()
    );
    let clip = jfk();
    let mut args = vec!["analyze", clip.to_str().unwrap(), "--json", "--words"];
    let local = common::json_doc(&args);
    args.extend_from_slice(&["--remote", &server]);
    let remote = common::json_doc(&args);
    assert_eq!(common::untimed(local), common::untimed(remote));
    // A host that is not there: one line, with what ssh said.
    let refused =
        "ssh -o BatchMode=yes -o ConnectTimeout=5 -p 1 127.0.0.1 prunescope serve --stdio";
    assert_one_line_error(
        &analyze_remote(refused),
        "the remote model ended (exit status 255); it said: ssh: connect to host 127.0.0.1 port 1: Connection refused",
    );
}

/// A results file's records without what is measured: one line per clip.
fn untimed_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| common::untimed(serde_json::from_str(l).unwrap()))
        .collect()
}

#[test]
fn remote_eval_writes_the_local_results() {
    let t = TempDir::new();
    let data = common::root().join("tests/data/eval/mmau");
    let server = format!("'{}' serve --stdio", bin());
    let mut files = Vec::new();
    for (name, remote) in [("local", None), ("remote", Some(server.as_str()))] {
        let out = t.0.join(name);
        let mut args = vec![
            "eval",
            "--dataset",
            "mmau",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--method",
            "full,segmentwise",
            "--keep",
            "0.25",
            "--no-report",
        ];
        if let Some(r) = remote {
            args.extend(["--remote", r]);
        }
        let (_, stderr) = common::ok(&args);
        assert!(stderr.contains("3 clip(s) run now"), "{stderr}");
        files.push(out.join("results.jsonl"));
    }
    let (local, remote) = (untimed_records(&files[0]), untimed_records(&files[1]));
    assert_eq!(local.len(), 3);
    assert_eq!(local, remote);
    // --remote and the model's options do not go together.
    let out = common::prunescope(&[
        "eval",
        "--dataset",
        "mmau",
        "--data",
        data.to_str().unwrap(),
        "--out",
        t.0.join("x").to_str().unwrap(),
        "--device",
        "cpu",
        "--remote",
        &server,
    ]);
    // A usage error: clap's first line says it, then the usage.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr
            .lines()
            .next()
            .unwrap_or_default()
            .contains("the argument '--device <DEVICE>' cannot be used with '--remote <COMMAND>'"),
        "{stderr}"
    );
}

#[test]
fn a_clip_file_past_the_frame_limit_is_refused_before_it_is_read() {
    let t = TempDir::new();
    let huge = t.0.join("huge.wav");
    // Sparse: it takes no disk, and reading it would take 512 MiB of memory.
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(frame::MAX_FRAME + 1).unwrap();
    let e = remote_clip_error(huge);
    assert!(
        e.ends_with("huge.wav: the file is 536870913 bytes, more than the remote protocol's 536870912 per frame"),
        "{e}"
    );
}
