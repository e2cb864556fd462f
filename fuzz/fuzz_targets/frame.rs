//! The remote protocol as the client and the server read it: the magic, then frames of any
//! message either side sends. Every input is an error or a message; nothing panics or
//! allocates past the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prunescope::remote::frame;
use prunescope::remote::protocol::{Hello, ToClient, ToServer};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    if frame::read_magic(&mut r).is_err() {
        return;
    }
    let _ = frame::read_frame::<Hello>(&mut r);
    for _ in 0..4 {
        let mut a = r;
        let _ = frame::read_frame::<ToServer>(&mut a);
        let mut b = r;
        if frame::read_frame::<ToClient>(&mut b).is_err() {
            break;
        }
        r = b;
    }
});
