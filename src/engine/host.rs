//! Where the model runs, behind one interface: [`ModelHost`] is what the explorer and the
//! command line talk to, whether the model is in this process ([`super::worker::Worker`]) or on
//! another machine ([`crate::remote::Remote`], a `prunescope serve --stdio` reached through a
//! command such as `ssh gpu-host ...`). Both take [`Request`]s and answer with [`Event`]s; the
//! remote one can also lose its link ([`Event::Lost`] with a [`LinkError`]).
//!
//! [`Session`] is the request-and-wait use of a host: the command line's `analyze` and `eval`
//! open a clip, decode a plan's runs and assemble the `analyze` document through it, so the
//! local and the remote paths are the same code.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::worker::{ClipSource, Decode, Event, KeyedRun, OpenClip, Request, Scoring};
use super::{Analysis, Plan, Progress, RunKey, RunResult};
use crate::model::ModelInfo;
use crate::scores::Layers;

/// A model that answers [`Request`]s with [`Event`]s, here or elsewhere.
pub trait ModelHost: Send {
    /// Queues a request (never blocks on the model).
    fn send(&self, request: Request);
    /// Asks the running decode (if any) to stop at its next step.
    fn cancel(&self);
    /// The next event, without waiting.
    fn try_recv(&self) -> Option<Event>;
    /// The next event, waiting at most `timeout`.
    fn recv_timeout(&self, timeout: Duration) -> Option<Event>;
    /// The command line of a remote model; None for a model in this process.
    fn remote(&self) -> Option<&str> {
        None
    }
}

/// Why a remote model stopped answering. Values, so each front end words them; every one
/// carries what the server last wrote on its standard error, when it wrote anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum LinkError {
    /// The command could not be started at all (no shell).
    #[error("cannot start `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    /// The server's output ended: it exited, was killed, or the link dropped.
    #[error("the remote model ended{}{}", status_text(.status), stderr_text(.stderr))]
    Closed {
        /// Its exit status (None: killed by a signal, or unknown).
        status: Option<i32>,
        stderr: Option<String>,
    },
    /// The command wrote something that is not the protocol (a shell banner, a usage message).
    #[error("the remote command does not speak the prunescope protocol: it wrote `{start}`{}", stderr_text(.stderr))]
    NotProtocol {
        start: String,
        stderr: Option<String>,
    },
    /// The two sides speak different protocol versions.
    #[error("protocol version mismatch: the server speaks version {theirs} (prunescope {their_version}), this client version {ours} (prunescope {our_version}): install the same prunescope on both sides")]
    Version {
        ours: u32,
        theirs: u32,
        our_version: String,
        their_version: String,
    },
    /// A frame longer than the protocol allows: the peer is cut off before anything is read.
    #[error("the peer sent a frame of {len} bytes, over the limit of {max}: cut off")]
    FrameTooLarge { len: u64, max: u64 },
    /// A frame that does not decode as a message of the protocol.
    #[error("the peer sent a malformed frame ({detail}): cut off")]
    Malformed { detail: String },
    /// The model's thread in this process stopped without being asked (a bug: it panicked).
    #[error("the model's thread stopped unexpectedly (an internal error; its message is on stderr): restart prunescope")]
    Stopped,
    /// The server refused the client (its message).
    #[error("the server refused: {0}")]
    Refused(String),
    /// Reading or writing the link failed.
    #[error("the link to the remote model failed: {reason}{}", stderr_text(.stderr))]
    Io {
        reason: String,
        stderr: Option<String>,
    },
}

fn status_text(status: &Option<i32>) -> String {
    match status {
        Some(127) => " (exit status 127: command not found)".into(),
        Some(s) => format!(" (exit status {s})"),
        None => String::new(),
    }
}

fn stderr_text(stderr: &Option<String>) -> String {
    stderr
        .as_deref()
        .map(|l| format!("; it said: {l}"))
        .unwrap_or_default()
}

impl LinkError {
    /// The same error with the server's last standard-error line, where it has room for one.
    pub fn with_stderr(self, line: Option<String>) -> LinkError {
        match self {
            LinkError::Closed { status, stderr } => LinkError::Closed {
                status,
                stderr: stderr.or(line),
            },
            LinkError::NotProtocol { start, stderr } => LinkError::NotProtocol {
                start,
                stderr: stderr.or(line),
            },
            LinkError::Io { reason, stderr } => LinkError::Io {
                reason,
                stderr: stderr.or(line),
            },
            other => other,
        }
    }
}

/// Why a request to a host did not give its answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostError {
    /// The model could not be loaded (its message).
    #[error("{0}")]
    Model(String),
    /// The clip could not be read or encoded (its message).
    #[error("{0}")]
    Clip(String),
    /// Decoding failed (its message).
    #[error("{0}")]
    Decode(String),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("cancelled")]
    Cancelled,
    /// The host answered a run it was not asked for, or not every run.
    #[error("the model answered {got} of {want} runs")]
    Incomplete { got: usize, want: usize },
}

/// A host whose model is loaded, asked one thing at a time (the command line's use).
pub struct Session<'a> {
    host: &'a dyn ModelHost,
    /// The model's description, from its [`Event::ModelLoaded`].
    pub info: ModelInfo,
    next_job: u64,
    /// The job of the clip last encoded (what [`Session::decode`] decodes).
    clip: Option<u64>,
}

/// How often a waiting session looks at the cancel flag.
const POLL: Duration = Duration::from_millis(50);

impl<'a> Session<'a> {
    /// Waits for the host's model (a [`Request::LoadModel`] or [`Request::UseModel`] sent
    /// before, or a remote server's handshake).
    pub fn open(host: &'a dyn ModelHost, cancel: &AtomicBool) -> Result<Session<'a>, HostError> {
        loop {
            match next(host, cancel)? {
                Event::ModelLoaded { info, .. } => {
                    return Ok(Session {
                        host,
                        info,
                        next_job: 1,
                        clip: None,
                    })
                }
                Event::ModelFailed { message, .. } => return Err(HostError::Model(message)),
                Event::Lost(e) => return Err(e.into()),
                _ => {}
            }
        }
    }

    fn job(&mut self) -> u64 {
        self.next_job += 1;
        self.next_job
    }

    /// The `analyze` document of a clip: encoded with `layers`' scores (every layer's as well
    /// when the plan's score source is not the last), every run of `plan` decoded.
    pub fn analyze(
        &mut self,
        clip: ClipSource,
        plan: &Plan,
        layers: Layers,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Analysis, HostError> {
        let job = self.job();
        let scoring = Scoring {
            layers,
            source: plan.params.source,
        };
        self.host
            .send(Request::OpenClip(OpenClip { job, clip, scoring }));
        let report = loop {
            match next(self.host, cancel)? {
                Event::ClipEncoded(e) if e.job == job => {
                    self.clip = Some(job);
                    break e.report;
                }
                Event::ClipFailed {
                    job: j, message, ..
                } if j == job => return Err(HostError::Clip(message)),
                Event::Progress { job: j, done, of } if j == job => {
                    progress(Progress::Encoded { window: done, of })
                }
                Event::Lost(e) => return Err(e.into()),
                _ => {}
            }
        };
        let runs = self.decode(plan, cancel, progress)?;
        Ok(Analysis {
            report,
            plan: Some(super::PlanSettings::of(plan)),
            runs,
        })
    }

    /// Decodes every run of `plan` on the clip last encoded; the results in the plan's order.
    pub fn decode(
        &mut self,
        plan: &Plan,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<RunResult>, HostError> {
        let job = self.job();
        let runs: Vec<KeyedRun> = plan
            .runs
            .iter()
            .map(|spec| KeyedRun::new(spec.clone(), &plan.params, &plan.decoding))
            .collect();
        let keys: Vec<RunKey> = runs.iter().map(|r| r.key).collect();
        let want = runs.len();
        self.host.send(Request::Decode(Decode {
            job,
            clip: self.clip,
            first: want,
            runs,
            params: plan.params.clone(),
            decoding: plan.decoding.clone(),
        }));
        let mut results: Vec<Option<RunResult>> = vec![None; want];
        loop {
            let event = match next(self.host, cancel) {
                Err(HostError::Cancelled) => {
                    self.host.cancel();
                    return Err(HostError::Cancelled);
                }
                other => other?,
            };
            match event {
                Event::CellDone {
                    job: j,
                    key,
                    result,
                } if j == job => {
                    // Runs with the same key (none in a plan's grid) share the answer.
                    for (slot, k) in results.iter_mut().zip(&keys) {
                        if *k == key {
                            *slot = Some(result.clone());
                        }
                    }
                }
                Event::Progress { job: j, done, of } if j == job => {
                    progress(Progress::Decoded { done, of })
                }
                Event::DecodeFinished {
                    job: j, cancelled, ..
                } if j == job => {
                    if cancelled {
                        return Err(HostError::Cancelled);
                    }
                    break;
                }
                Event::DecodeFailed { job: j, message } if j == job => {
                    return Err(HostError::Decode(message))
                }
                Event::Lost(e) => return Err(e.into()),
                _ => {}
            }
        }
        let got = results.iter().filter(|r| r.is_some()).count();
        if got != want {
            return Err(HostError::Incomplete { got, want });
        }
        Ok(results.into_iter().flatten().collect())
    }
}

/// The host's next event, looking at `cancel` while it waits.
fn next(host: &dyn ModelHost, cancel: &AtomicBool) -> Result<Event, HostError> {
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(HostError::Cancelled);
        }
        if let Some(e) = host.recv_timeout(POLL) {
            return Ok(e);
        }
    }
}
