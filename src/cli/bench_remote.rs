//! `prunescope bench-remote`: a clip's whole grid (every setting, words and attention on)
//! through the model in this process and through each `--remote` command, in turns in one
//! process, with the bytes each way: what the remote model costs over a pipe or ssh.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use prunescope::engine::worker::{ClipSource, Worker};
use prunescope::engine::{ModelHost, Session};
use prunescope::remote::{Remote, RemoteOptions};
use prunescope::scores::Layers;
use prunescope::util::median;

#[derive(Args)]
pub struct BenchRemoteArgs {
    /// Audio file (default: the bundled demo clip, assets/jfk.wav).
    clip: Option<PathBuf>,
    /// A server's command line to compare with the model in this process (repeat the flag for
    /// several: a pipe, ssh to a host); each should serve the same model as `--model`.
    #[arg(long, value_name = "COMMAND", required = true)]
    remote: Vec<String>,
    /// Grids per host (the median is reported); the hosts take turns.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[command(flatten)]
    model: super::ModelArgs,
    #[command(flatten)]
    plan: super::PlanArgs,
}

/// One host's measurements.
struct Row {
    name: String,
    ms: Vec<f64>,
    /// Bytes sent and received per grid (remote hosts).
    bytes: Option<(u64, u64)>,
}

pub fn run(a: BenchRemoteArgs) -> Result<()> {
    let clip = match &a.clip {
        Some(c) => c.clone(),
        None => std::env::current_dir()?.join("assets/jfk.wav"),
    };
    let audio = prunescope::audio::load(&clip)?;
    let cancel = AtomicBool::new(false);
    let local = Worker::with_model(super::load_model(&a.model)?)
        .context("cannot start the model's thread")?;
    let remotes: Vec<Remote> = a
        .remote
        .iter()
        .map(|c| Remote::spawn(c, RemoteOptions::default(), |_| {}))
        .collect();
    let mut hosts: Vec<(&str, &dyn ModelHost, Option<&Remote>)> =
        vec![("in process", &local, None)];
    for (command, r) in a.remote.iter().zip(&remotes) {
        hosts.push((command, r, Some(r)));
    }
    let mut sessions = Vec::new();
    for (name, host, _) in &hosts {
        let session = Session::open(*host, &cancel).with_context(|| format!("`{name}`"))?;
        if let Some(first) = sessions.first().map(|s: &Session<'_>| s.info.label()) {
            if session.info.label() != first {
                anyhow::bail!(
                    "`{name}` serves {}, not {first}: give both the same model",
                    session.info.label()
                );
            }
        }
        sessions.push(session);
    }
    let mut rows: Vec<Row> = hosts
        .iter()
        .map(|(name, ..)| Row {
            name: (*name).to_string(),
            ms: Vec::new(),
            bytes: None,
        })
        .collect();
    let mut plan = super::build_plan(&a.plan, sessions[0].info.seconds_per_token)?;
    plan.check_for(&sessions[0].info)?;
    plan.decoding.attention = true;
    let mut texts: Option<Vec<String>> = None;
    for _ in 0..a.rounds.max(1) {
        for (i, session) in sessions.iter_mut().enumerate() {
            let remote = hosts[i].2;
            let before = remote.map(Remote::bytes);
            let t0 = Instant::now();
            let doc = session.analyze(
                ClipSource::Path(clip.clone()),
                &plan,
                Layers::All,
                &cancel,
                &mut |_| {},
            )?;
            rows[i].ms.push(t0.elapsed().as_secs_f64() * 1e3);
            if let (Some((s0, r0)), Some(r)) = (before, remote) {
                let (s1, r1) = r.bytes();
                rows[i].bytes = Some((s1 - s0, r1 - r0));
            }
            let t: Vec<String> = doc.runs.iter().map(|r| r.text.clone()).collect();
            match &texts {
                None => texts = Some(t),
                Some(first) if *first != t => {
                    anyhow::bail!("{} said something else than in process", rows[i].name)
                }
                Some(_) => {}
            }
        }
    }
    println!(
        "{} ({:.1} s), {} settings with words and attention, {}: median of {} grid(s) each",
        clip.display(),
        audio.duration_s(),
        plan.runs.len(),
        sessions[0].info.label(),
        a.rounds.max(1)
    );
    println!(
        "{:<48} {:>10} {:>7} {:>12} {:>12}",
        "host", "grid ms", "ratio", "sent/grid", "recv/grid"
    );
    let base = median(rows[0].ms.iter().copied());
    for r in &rows {
        let m = median(r.ms.iter().copied());
        let (sent, recv) = match r.bytes {
            Some((s, v)) => (human(s), human(v)),
            None => ("-".into(), "-".into()),
        };
        let mut name = r.name.clone();
        if name.chars().count() > 48 {
            name = format!(
                "…{}",
                name.chars()
                    .skip(name.chars().count() - 47)
                    .collect::<String>()
            );
        }
        println!(
            "{name:<48} {m:>10.0} {:>7.3} {sent:>12} {recv:>12}",
            m / base
        );
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}
