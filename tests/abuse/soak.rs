//! The soak: the worker opening 200 clips one after another, and a served model answering
//! 1,000 requests with random cancels and a connection dropped in the middle, measured by the
//! memory they hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{self, TempDir};
use prunescope::engine::worker::{ClipSource, Decode, Event, KeyedRun, OpenClip, Request, Worker};
use prunescope::engine::{Decoding, ModelHost, RunKey, RunMethod, RunSpec};
use prunescope::model::fake::FakeModel;
use prunescope::model::LoadOptions;
use prunescope::prune::{Method, Params};
use prunescope::remote::{Remote, RemoteOptions};
use prunescope::util::SplitMix64;

/// A kibibyte figure of `/proc/PID/status` (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .trim()
                .strip_suffix("kB")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The clips of the soak: the demo clip, a minute of it, a corrupt file, one cut short,
/// and a path with nothing there.
pub fn clips(t: &TempDir) -> Vec<PathBuf> {
    let jfk = common::root().join("assets/jfk.wav");
    let audio = prunescope::audio::load(&jfk).unwrap();
    let mut long = Vec::new();
    while long.len() < 60 * 16_000 {
        long.extend_from_slice(&audio.samples);
    }
    let long = t.file(
        "one_minute.wav",
        &common::wav_bytes(1, 1, 16_000, 16, &common::pcm16(&long), None),
    );
    let corrupt = t.file(
        "corrupt.wav",
        b"RIFF\x10\x00\x00\x00WAVEnot really audio at all",
    );
    let bytes = std::fs::read(&jfk).unwrap();
    let cut = t.file("cut.wav", &bytes[..40]);
    vec![jfk, long, corrupt, cut, t.0.join("missing.wav")]
}

/// Waits for the answer to `job`'s [`Request::OpenClip`]: Ok(tokens) or the error.
pub fn opened(host: &dyn ModelHost, job: u64) -> Result<usize, String> {
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "clip {job} never answered"
        );
        match host.recv_timeout(Duration::from_secs(1)) {
            Some(Event::ClipEncoded(e)) if e.job == job => return Ok(e.report.tokens.count),
            Some(Event::ClipFailed {
                job: j, message, ..
            }) if j == job => return Err(message),
            Some(Event::ModelFailed { message, .. }) => panic!("{message}"),
            Some(Event::Lost(e)) => panic!("{e}"),
            _ => {}
        }
    }
}

/// The worker opens 200 clips one after another (as the explorer's does: samples and
/// spectrogram for the lanes, then the encoder): peak memory after the 200th within 10 % of
/// after the 10th.
pub fn two_hundred_clips(t: &TempDir) {
    let worker = Worker::spawn(|_| {}).unwrap();
    // The fake model by default (the pipeline around the model: decoding, resampling, the
    // spectrogram, the worker's state); `SOAK_MODEL=default` soaks Whisper tiny.en too (2.5
    // minutes here instead of seconds).
    let real = std::env::var("SOAK_MODEL").as_deref() == Ok("default");
    let label = match prunescope::model::default_dir().filter(|_| real) {
        Some(dir) => {
            worker.send(Request::LoadModel {
                dir,
                options: LoadOptions::default(),
            });
            "whisper tiny.en"
        }
        None => {
            worker.send(Request::UseModel(Box::new(FakeModel::new(Duration::ZERO))));
            "the fake model"
        }
    };
    let clips = clips(t);
    let me = std::process::id().to_string();
    let (mut hwm10, mut rss10) = (0, 0);
    let (mut ok, mut failed) = (0, 0);
    let t0 = Instant::now();
    for i in 0..200u64 {
        let clip = clips[i as usize % clips.len()].clone();
        worker.send(Request::OpenClip(OpenClip {
            job: i + 1,
            clip: ClipSource::Path(clip.clone()),
            scoring: Default::default(),
        }));
        match opened(&worker, i + 1) {
            Ok(tokens) => {
                assert!(tokens > 0);
                ok += 1;
            }
            Err(message) => {
                assert!(
                    message.contains(clip.file_name().unwrap().to_str().unwrap()),
                    "{message}"
                );
                failed += 1;
            }
        }
        if i + 1 == 10 {
            (hwm10, rss10) = (status_kb(&me, "VmHWM"), status_kb(&me, "VmRSS"));
        }
    }
    let (hwm, rss) = (status_kb(&me, "VmHWM"), status_kb(&me, "VmRSS"));
    println!(
        "200 clips with {label} in {:.1} s ({ok} opened, {failed} refused): peak RSS {:.0} MB after the 10th, {:.0} MB after the 200th ({:+.1} %); RSS {:.0} -> {:.0} MB",
        t0.elapsed().as_secs_f64(),
        mb(hwm10),
        mb(hwm),
        (hwm as f64 / hwm10 as f64 - 1.0) * 100.0,
        mb(rss10),
        mb(rss),
    );
    assert_eq!((ok, failed), (80, 120));
    assert!(hwm10 > 0, "no /proc/self/status");
    assert!(
        hwm as f64 <= hwm10 as f64 * 1.10,
        "peak RSS grew from {hwm10} kB to {hwm} kB"
    );
}

/// A served fake model (no step time), its process id written to `pid`.
fn served(pid: &Path) -> Remote {
    let _ = std::fs::remove_file(pid);
    Remote::spawn(
        &common::served_fake(0, Some(pid)),
        RemoteOptions::default(),
        |_| {},
    )
}

pub fn server_pid(pid: &Path) -> String {
    let t0 = Instant::now();
    loop {
        if let Ok(p) = std::fs::read_to_string(pid) {
            if !p.trim().is_empty() {
                return p.trim().to_string();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the server never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The runs a request may ask for: every pruning method at a few keep ratios.
fn pool() -> Vec<KeyedRun> {
    let mut runs = vec![KeyedRun::new(
        RunSpec {
            method: RunMethod::Vanilla,
            keep: 1.0,
        },
        &Params::default(),
        &Decoding::default(),
    )];
    for m in [
        Method::TopK,
        Method::Segmentwise,
        Method::VisionZip,
        Method::Random,
        Method::BottomK,
    ] {
        for keep in [0.1, 0.25, 0.5, 0.75] {
            let spec = RunSpec {
                method: RunMethod::Prune(m),
                keep,
            };
            runs.push(KeyedRun::new(
                spec,
                &Params::default(),
                &Decoding::default(),
            ));
        }
    }
    runs
}

/// What the model here says for each run of the pool (the served one must say the same).
fn reference(jfk: &Path, runs: &[KeyedRun]) -> HashMap<RunKey, String> {
    let worker = Worker::with_model(Box::new(FakeModel::new(Duration::ZERO))).unwrap();
    worker.send(Request::OpenClip(OpenClip {
        job: 1,
        clip: ClipSource::Path(jfk.to_path_buf()),
        scoring: Default::default(),
    }));
    opened(&worker, 1).unwrap();
    let defaults = (&Params::default(), &Decoding::default());
    let (texts, finished) = decode_all(&worker, 2, runs.to_vec(), defaults, false);
    assert!(finished);
    texts
}

/// A decode request for the clip the host has, its first run decoded alone first.
fn decode_request(
    job: u64,
    runs: Vec<KeyedRun>,
    (params, decoding): (&Params, &Decoding),
) -> Request {
    Request::Decode(Decode {
        job,
        clip: None,
        first: 1,
        runs,
        params: params.clone(),
        decoding: decoding.clone(),
    })
}

/// Sends one decode request (cancelled at once when `cancel`) and collects its cells until it
/// finishes; None when the link is lost first.
pub fn decode_all(
    host: &dyn ModelHost,
    job: u64,
    runs: Vec<KeyedRun>,
    (params, decoding): (&Params, &Decoding),
    cancel: bool,
) -> (HashMap<RunKey, String>, bool) {
    let keys: Vec<RunKey> = runs.iter().map(|r| r.key).collect();
    host.send(decode_request(job, runs, (params, decoding)));
    if cancel {
        host.cancel();
    }
    let mut texts = HashMap::new();
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "request {job} hangs"
        );
        match host.recv_timeout(Duration::from_secs(1)) {
            Some(Event::CellDone {
                job: j,
                key,
                result,
            }) => {
                assert_eq!(j, job, "an answer to another request");
                assert!(keys.contains(&key), "request {job} did not ask for {key:?}");
                texts.insert(key, result.text);
            }
            Some(Event::DecodeFinished { job: j, .. }) if j == job => return (texts, true),
            Some(Event::DecodeFailed { job: j, message }) if j == job => panic!("{message}"),
            Some(Event::Lost(_)) => return (texts, false),
            _ => {}
        }
    }
}

/// A served model answers 1,000 requests, one in five cancelled as it is sent, the server
/// killed at the 500th and connected to again: every answer is its request's, with the text the
/// model here gives that run; the server's and this process's memory stay flat.
pub fn a_thousand_requests(t: &TempDir, seed: u64) {
    let jfk = common::root().join("assets/jfk.wav");
    let pool = pool();
    let want = reference(&jfk, &pool);
    let pid_file = t.0.join("server.pid");
    let me = std::process::id().to_string();
    let mut rng = SplitMix64(seed);
    let defaults = (&Params::default(), &Decoding::default());
    let mut remote = served(&pid_file);
    let mut pid = server_pid(&pid_file);
    let open = |remote: &Remote, job: u64| {
        remote.send(Request::OpenClip(OpenClip {
            job,
            clip: ClipSource::Path(jfk.clone()),
            scoring: Default::default(),
        }));
        opened(remote, job).unwrap();
    };
    open(&remote, 1);
    let (mut cells, mut cancelled, mut lost) = (0, 0, 0);
    let mut server_rss = Vec::new();
    let mut client_rss = Vec::new();
    let t0 = Instant::now();
    for i in 0..1000u64 {
        let job = 10 + i;
        let n = 1 + rng.below(4);
        let runs: Vec<KeyedRun> = (0..n)
            .map(|_| pool[rng.below(pool.len())].clone())
            .collect();
        let cancel = rng.below(5) == 0;
        if i == 500 {
            // The connection dropped mid-request: the server killed while it decodes.
            remote.send(decode_request(job, pool.clone(), defaults));
            let kill = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
            assert!(kill.unwrap().success());
            let t1 = Instant::now();
            loop {
                assert!(
                    t1.elapsed() < Duration::from_secs(60),
                    "the link never dropped"
                );
                match remote.recv_timeout(Duration::from_secs(1)) {
                    Some(Event::CellDone {
                        job: j,
                        key,
                        result,
                    }) => {
                        assert_eq!((j, Some(&result.text)), (job, want.get(&key)));
                        cells += 1;
                    }
                    Some(Event::Lost(_)) => break,
                    _ => {}
                }
            }
            lost += 1;
            remote = served(&pid_file);
            pid = server_pid(&pid_file);
            open(&remote, job);
            continue;
        }
        let (texts, finished) = decode_all(&remote, job, runs.clone(), defaults, cancel);
        assert!(finished, "request {job}: the link was lost");
        for (key, text) in &texts {
            assert_eq!(Some(text), want.get(key), "request {job}, run {key:?}");
        }
        if !cancel {
            assert_eq!(texts.len(), {
                let mut k: Vec<RunKey> = runs.iter().map(|r| r.key).collect();
                k.sort_by_key(|k| format!("{k:?}"));
                k.dedup();
                k.len()
            });
        } else {
            cancelled += 1;
        }
        cells += texts.len();
        if [100, 499, 600, 999].contains(&i) {
            server_rss.push(status_kb(&pid, "VmRSS"));
            client_rss.push(status_kb(&me, "VmRSS"));
        }
    }
    println!(
        "1000 requests to a served model (seed {seed}) in {:.1} s: {cells} cells, {cancelled} cancelled, {lost} connection dropped; server RSS {:.0} -> {:.0} MB (first server), {:.0} -> {:.0} MB (second); this process {:.0} -> {:.0} MB",
        t0.elapsed().as_secs_f64(),
        mb(server_rss[0]),
        mb(server_rss[1]),
        mb(server_rss[2]),
        mb(server_rss[3]),
        mb(client_rss[0]),
        mb(client_rss[3]),
    );
    // Flat: within 10 % (and 8 MB, the allocator's slack on so small a process).
    let flat = |a: u64, b: u64| b as f64 <= a as f64 * 1.10 + 8192.0;
    assert!(flat(server_rss[0], server_rss[1]), "{server_rss:?}");
    assert!(flat(server_rss[2], server_rss[3]), "{server_rss:?}");
    assert!(flat(client_rss[0], client_rss[3]), "{client_rss:?}");
}
