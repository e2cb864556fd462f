//! The client: a [`ModelHost`] whose model is a `prunescope serve --stdio` at the other end of
//! a command's stdin and stdout (`sh -c COMMAND`: `ssh gpu-host prunescope serve --stdio ...`,
//! or the server itself on this machine).
//!
//! Three threads: the writer sends the hello and then each request as a frame (a clip as its
//! file's bytes, decoded here as well for the explorer's waveform and spectrogram when
//! [`RemoteOptions::preview`] asks); the reader checks the server's magic and hello, then turns
//! its frames into [`Event`]s; a third keeps the last lines the server wrote on stderr. Whatever
//! ends the link (the server exiting, the link dropping, text or garbage instead of frames, an
//! oversized frame, another protocol version) becomes one [`Event::Lost`] with the server's
//! last stderr line, and nothing more is read.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::frame::{self, FrameError};
use super::protocol::{Hello, ToClient, ToServer};
use crate::engine::worker::{self, ClipSource, Event, OpenClip, Request, LATER};
use crate::engine::{LinkError, ModelHost};

/// How a remote model is used.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteOptions {
    /// Decode each clip here as well and report it as [`Event::ClipLoaded`] (its samples and
    /// spectrogram: the explorer's lanes and playback). The command line needs none.
    pub preview: bool,
    /// Copy the server's stderr lines to ours, prefixed `remote: ` (the command line).
    pub echo_stderr: bool,
}

/// Bytes through the link, framing included.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

type Wake = Arc<dyn Fn(Duration) + Send + Sync>;

/// The last lines the server wrote on stderr.
#[derive(Clone, Default)]
struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Closed when the server's stderr ends.
    ended: Option<Receiver<()>>,
}

impl StderrTail {
    const KEEP: usize = 20;

    fn spawn(stderr: ChildStderr, echo: bool) -> StderrTail {
        let lines: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (done, ended) = crossbeam_channel::bounded::<()>(0);
        let keep = lines.clone();
        let started = std::thread::Builder::new()
            .name("prunescope-remote-stderr".into())
            .spawn(move || {
                let _done = done;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        eprintln!("remote: {line}");
                    }
                    let Ok(mut l) = keep.lock() else { break };
                    if l.len() == Self::KEEP {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
        StderrTail {
            lines,
            ended: started.ok().map(|_| ended),
        }
    }

    /// The last non-empty line, once stderr has ended (or after a short wait).
    fn last(&self) -> Option<String> {
        if let Some(ended) = &self.ended {
            let _ = ended.recv_timeout(Duration::from_millis(500));
        }
        let lines = self.lines.lock().ok()?;
        lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .map(str::to_string)
    }
}

enum Outgoing {
    Request(Box<Request>),
    Cancel,
}

/// A model served at the other end of a command's stdin and stdout.
pub struct Remote {
    command: String,
    out: Option<Sender<Outgoing>>,
    rx: Receiver<Event>,
    stats: Arc<LinkStats>,
    child: Arc<Mutex<Option<Child>>>,
}

impl Remote {
    /// Starts `sh -c COMMAND` and speaks to it; what goes wrong arrives as [`Event::Lost`].
    /// `wake(within)` is called after each event (the explorer repaints).
    pub fn spawn(
        command: &str,
        options: RemoteOptions,
        wake: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Remote {
        let wake: Wake = Arc::new(wake);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        {
            // Its own process group: the terminal's Ctrl-C reaches us only, and dropping the
            // link can stop the whole command (`sh` and what it started).
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let lost = LinkError::Spawn {
                    command: command.into(),
                    reason: e.to_string(),
                };
                return Remote::failed(command, lost, &wake, Arc::default());
            }
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let lost = LinkError::Spawn {
                command: command.into(),
                reason: "its standard streams could not be piped".into(),
            };
            return Remote::failed(command, lost, &wake, Arc::new(Mutex::new(Some(child))));
        };
        let tail = StderrTail::spawn(stderr, options.echo_stderr);
        let child = Arc::new(Mutex::new(Some(child)));
        Remote::start(command, stdout, stdin, child, tail, options, wake)
    }

    /// Speaks to a server over `reader` / `writer` already connected (tests: a server thread
    /// in this process).
    pub fn over(
        label: &str,
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        options: RemoteOptions,
        wake: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Remote {
        let child = Arc::new(Mutex::new(None));
        Remote::start(
            label,
            reader,
            writer,
            child,
            StderrTail::default(),
            options,
            Arc::new(wake),
        )
    }

    /// A link that failed before it started. `child` is the command when it did start (a
    /// thread could not), so dropping the handle still stops and reaps it.
    fn failed(
        command: &str,
        lost: LinkError,
        wake: &Wake,
        child: Arc<Mutex<Option<Child>>>,
    ) -> Remote {
        let (tx, rx) = crossbeam_channel::unbounded();
        let _ = tx.send(Event::Lost(lost));
        wake(Duration::ZERO);
        Remote {
            command: command.into(),
            out: None,
            rx,
            stats: Arc::default(),
            child,
        }
    }

    fn start(
        command: &str,
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        child: Arc<Mutex<Option<Child>>>,
        tail: StderrTail,
        options: RemoteOptions,
        wake: Wake,
    ) -> Remote {
        let (out, requests) = crossbeam_channel::unbounded();
        let (events, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(LinkStats::default());
        let emit = Emit {
            events,
            wake: wake.clone(),
        };
        let writer_emit = emit.clone();
        let writer_stats = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("prunescope-remote-writer".into())
            .spawn(move || write_loop(writer, &requests, &writer_emit, &writer_stats, options));
        if let Err(e) = spawned {
            return Remote::failed(command, thread_error(command, &e), &wake, child);
        }
        let reader_stats = stats.clone();
        let reader_child = child.clone();
        let spawned = std::thread::Builder::new()
            .name("prunescope-remote-reader".into())
            .spawn(move || {
                let lost = read_loop(reader, &emit, &reader_stats);
                let lost = match lost {
                    LinkError::Closed { .. } => LinkError::Closed {
                        status: exit_status(&reader_child),
                        stderr: None,
                    },
                    other => other,
                };
                emit.send(Event::Lost(lost.with_stderr(tail.last())));
            });
        if let Err(e) = spawned {
            return Remote::failed(command, thread_error(command, &e), &wake, child);
        }
        Remote {
            command: command.into(),
            out: Some(out),
            rx,
            stats,
            child,
        }
    }

    /// Bytes sent and received so far, framing included.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.stats.sent.load(Ordering::Relaxed),
            self.stats.received.load(Ordering::Relaxed),
        )
    }
}

fn thread_error(command: &str, e: &std::io::Error) -> LinkError {
    LinkError::Spawn {
        command: command.into(),
        reason: format!("cannot start a thread: {e}"),
    }
}

/// The child's exit status once it has exited (waiting up to 2 s for it after its output
/// ended); None when killed by a signal or still running.
fn exit_status(child: &Mutex<Option<Child>>) -> Option<i32> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        let mut guard = child.lock().ok()?;
        let c = guard.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) => {}
            Err(_) => return None,
        }
        drop(guard);
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl ModelHost for Remote {
    fn send(&self, request: Request) {
        if let Some(out) = &self.out {
            let _ = out.send(Outgoing::Request(Box::new(request)));
        }
    }

    fn cancel(&self) {
        if let Some(out) = &self.out {
            let _ = out.send(Outgoing::Cancel);
        }
    }

    fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }

    fn remote(&self) -> Option<&str> {
        Some(&self.command)
    }
}

impl Drop for Remote {
    /// Closes the server's stdin (it exits at the end of its input) and, should it still run
    /// 3 s later, kills its process group; in the background, so closing never waits.
    fn drop(&mut self) {
        self.out = None;
        let child = self.child.clone();
        let _ = std::thread::Builder::new()
            .name("prunescope-remote-reaper".into())
            .spawn(move || {
                let t0 = Instant::now();
                loop {
                    let Ok(mut guard) = child.lock() else { return };
                    let Some(c) = guard.as_mut() else { return };
                    if !matches!(c.try_wait(), Ok(None)) {
                        return;
                    }
                    if t0.elapsed() > Duration::from_secs(3) {
                        kill_group(c);
                        let _ = c.wait();
                        return;
                    }
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
    }
}

fn kill_group(c: &mut Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(c.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = c.kill();
}

/// Sends events and wakes the caller.
#[derive(Clone)]
struct Emit {
    events: Sender<Event>,
    wake: Wake,
}

impl Emit {
    fn send(&self, e: Event) {
        // Progress ticks need no frame of their own (as the local worker's).
        let within = if matches!(e, Event::Progress { .. }) {
            LATER
        } else {
            Duration::ZERO
        };
        let _ = self.events.send(e);
        (self.wake)(within);
    }
}

/// The server's hello and frames, as events, until the link ends: returns why.
fn read_loop(mut r: impl Read, emit: &Emit, stats: &LinkStats) -> LinkError {
    if let Err(e) = frame::read_magic(&mut r) {
        return e.into_link();
    }
    stats
        .received
        .fetch_add(frame::MAGIC.len() as u64, Ordering::Relaxed);
    match frame::read_frame::<Hello>(&mut r) {
        Ok((hello, n)) => {
            stats.received.fetch_add(n, Ordering::Relaxed);
            if let Err(e) = hello.check() {
                return e;
            }
        }
        Err(e) => return e.into_link(),
    }
    loop {
        let (msg, n) = match frame::read_frame::<ToClient>(&mut r) {
            Ok(m) => m,
            Err(e) => return e.into_link(),
        };
        stats.received.fetch_add(n, Ordering::Relaxed);
        match msg {
            ToClient::Ready { info, .. } => emit.send(Event::ModelLoaded { info, dir: None }),
            ToClient::Refused(message) => return LinkError::Refused(message),
            ToClient::Event(e) => emit.send(e),
        }
    }
}

/// Our hello, then each request as a frame, until the link or the handle goes.
fn write_loop(
    mut w: impl Write,
    requests: &Receiver<Outgoing>,
    emit: &Emit,
    stats: &LinkStats,
    options: RemoteOptions,
) {
    let hello = frame::write_magic(&mut w)
        .map_err(FrameError::from)
        .and_then(|()| frame::write_frame(&mut w, &Hello::ours()));
    match hello {
        Ok(n) => {
            stats
                .sent
                .fetch_add(n + frame::MAGIC.len() as u64, Ordering::Relaxed);
        }
        // The reader reports what ended the link.
        Err(_) => return,
    }
    for o in requests {
        let Some(msg) = message(o, emit, options) else {
            continue;
        };
        let open = match &msg {
            ToServer::Open(o) => Some((o.job, o.clip.name().to_path_buf())),
            _ => None,
        };
        match frame::write_frame(&mut w, &msg) {
            Ok(n) => {
                stats.sent.fetch_add(n, Ordering::Relaxed);
            }
            Err(FrameError::TooLarge { len }) => {
                if let Some((job, path)) = open {
                    emit.send(Event::ClipFailed {
                        job,
                        message: format!(
                            "{}: its file is {len} bytes, more than the remote protocol's {} per frame",
                            path.display(),
                            frame::MAX_FRAME
                        ),
                        path,
                    });
                }
            }
            Err(_) => return,
        }
    }
}

/// A request as the protocol's message: a clip's bytes read (and decoded here for the
/// preview); what cannot go to a server answered here.
fn message(o: Outgoing, emit: &Emit, options: RemoteOptions) -> Option<ToServer> {
    let request = match o {
        Outgoing::Cancel => return Some(ToServer::Cancel),
        Outgoing::Request(r) => *r,
    };
    match request {
        Request::OpenClip(OpenClip { job, clip, scoring }) => {
            let path = clip.name().to_path_buf();
            let failed = |message: String| Event::ClipFailed {
                job,
                path: path.clone(),
                message,
            };
            let clip = match clip {
                // Its frame adds a few bytes to the file's: a file at the limit is refused
                // by the frame writer below.
                ClipSource::Path(p) => match ClipSource::read(p, frame::MAX_FRAME) {
                    Ok(c) => c,
                    Err(e) => {
                        emit.send(failed(e.to_string()));
                        return None;
                    }
                },
                bytes => bytes,
            };
            if options.preview {
                match clip.clone().load() {
                    Ok(audio) => emit.send(Event::ClipLoaded {
                        job,
                        path: path.clone(),
                        spectrogram: Arc::new(worker::spectrogram(&audio)),
                        samples: audio.samples,
                    }),
                    Err(e) => {
                        emit.send(failed(e.to_string()));
                        return None;
                    }
                }
            }
            Some(ToServer::Open(OpenClip { job, clip, scoring }))
        }
        Request::Decode(d) => Some(ToServer::Decode(d)),
        Request::LoadModel { dir, .. } => {
            emit.send(not_here(dir));
            None
        }
        Request::UseModel(_) => {
            emit.send(not_here(PathBuf::new()));
            None
        }
    }
}

fn not_here(dir: PathBuf) -> Event {
    Event::ModelFailed {
        dir,
        message: "the model is served remotely: its server's command line chooses it (use the local model to load another)".into(),
    }
}
