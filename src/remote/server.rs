//! `prunescope serve --stdio`: the worker spoken over a byte stream. Hello, load the model,
//! Ready; then a reader thread turns the client's frames into the worker's requests (a cancel
//! raises the worker's flag at once, mid-decode) while this thread writes the worker's events
//! back, each run's result as it finishes. The client closing its end stops the server.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::frame::{self, FrameError};
use super::protocol::{Capabilities, Hello, ToClient, ToServer};
use crate::engine::worker::{ClipSource, Event, OpenClip, Request, Worker};
use crate::engine::{LinkError, ModelHost};
use crate::model::AudioLanguageModel;

/// Why serving stopped other than the client closing its end.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The client broke the protocol or the link (it was cut off).
    #[error("{}", client_fault(.0))]
    Client(LinkError),
    /// The model could not be loaded (its message, also sent to the client).
    #[error("{0}")]
    Model(String),
    /// The worker thread could not start.
    #[error("cannot start the worker: {0}")]
    Worker(String),
}

/// What went wrong with the client, in the server's words (the client's [`LinkError`] texts
/// speak of the server).
pub fn client_fault(e: &LinkError) -> String {
    match e {
        LinkError::Closed { .. } => "the client closed the link".into(),
        LinkError::NotProtocol { start, .. } => {
            format!("the client does not speak the prunescope protocol: it wrote `{start}`")
        }
        LinkError::Version {
            ours,
            theirs,
            our_version,
            their_version,
        } => format!(
            "protocol version mismatch: the client speaks version {theirs} (prunescope {their_version}), this server version {ours} (prunescope {our_version}): install the same prunescope on both sides"
        ),
        LinkError::FrameTooLarge { len, max } => {
            format!("the client sent a frame of {len} bytes, over the limit of {max}: cut off")
        }
        LinkError::Malformed { detail } => {
            format!("the client sent a malformed frame ({detail}): cut off")
        }
        LinkError::Io { reason, .. } => format!("the link to the client failed: {reason}"),
        LinkError::Spawn { .. } | LinkError::Refused(_) | LinkError::Stopped => e.to_string(),
    }
}

/// Serves one client on `input` / `output` (stdin / stdout): the model comes from `load`, which
/// runs after the hellos so a client of another version is refused before a long load.
pub fn serve(
    mut input: impl Read + Send,
    mut output: impl Write,
    load: impl FnOnce() -> Result<Box<dyn AudioLanguageModel>, String>,
) -> Result<(), ServeError> {
    let link = |e: FrameError| ServeError::Client(e.into_link());
    frame::write_magic(&mut output).map_err(|e| link(e.into()))?;
    frame::write_frame(&mut output, &Hello::ours()).map_err(link)?;
    frame::read_magic(&mut input).map_err(link)?;
    let (hello, _): (Hello, u64) = frame::read_frame(&mut input).map_err(link)?;
    if let Err(e) = hello.check() {
        let _ = frame::write_frame(&mut output, &ToClient::Refused(client_fault(&e)));
        return Err(ServeError::Client(e));
    }
    let model = match load() {
        Ok(m) => m,
        Err(message) => {
            let _ = frame::write_frame(&mut output, &ToClient::Refused(message.clone()));
            return Err(ServeError::Model(message));
        }
    };
    let info = model.info().clone();
    let ready = ToClient::Ready {
        capabilities: Capabilities::of(&info),
        info,
    };
    frame::write_frame(&mut output, &ready).map_err(link)?;
    let worker = Worker::with_model(model).map_err(|e| ServeError::Worker(e.to_string()))?;
    let (extra_tx, extra) = crossbeam_channel::unbounded::<Event>();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let end = read_requests(&mut input, &worker, &extra_tx);
            done.store(true, Ordering::SeqCst);
            end
        });
        let written = write_events(&mut output, &worker, &extra, &done);
        if written.is_err() {
            // The client is gone: stop the model's work; the reader ends with the stream.
            worker.cancel();
        }
        let read = reader.join().unwrap_or(Ok(()));
        read.and(written)
    })
}

/// The client's requests, until its stream ends (`Ok`) or breaks the protocol.
fn read_requests(
    input: &mut impl Read,
    worker: &Worker,
    extra: &Sender<Event>,
) -> Result<(), ServeError> {
    loop {
        let msg: ToServer = match frame::read_frame(input) {
            Ok((m, _)) => m,
            Err(FrameError::Eof) => return Ok(()),
            Err(e) => {
                worker.cancel();
                return Err(ServeError::Client(e.into_link()));
            }
        };
        match msg {
            ToServer::Open(OpenClip {
                job,
                clip: ClipSource::Path(path),
                ..
            }) => {
                let _ = extra.send(Event::ClipFailed {
                    job,
                    message: format!(
                        "{}: the server takes a clip's bytes, not a path on the client",
                        path.display()
                    ),
                    path,
                });
            }
            ToServer::Open(open) => worker.send(Request::OpenClip(open)),
            ToServer::Decode(d) => worker.send(Request::Decode(d)),
            ToServer::Cancel => worker.cancel(),
        }
    }
}

/// The worker's events to the client until the reader is done and nothing is left.
fn write_events(
    output: &mut impl Write,
    worker: &Worker,
    extra: &crossbeam_channel::Receiver<Event>,
    done: &AtomicBool,
) -> Result<(), ServeError> {
    let mut send = |e: Event| -> Result<(), ServeError> {
        // The client decoded the clip itself for its lanes.
        if matches!(e, Event::ClipLoaded { .. } | Event::ModelLoaded { .. }) {
            return Ok(());
        }
        frame::write_frame(output, &ToClient::Event(e))
            .map(|_| ())
            .map_err(|e| ServeError::Client(e.into_link()))
    };
    while !done.load(Ordering::SeqCst) {
        if let Some(e) = worker.recv_timeout(Duration::from_millis(20)) {
            send(e)?;
        }
        while let Ok(e) = extra.try_recv() {
            send(e)?;
        }
    }
    Ok(())
}
