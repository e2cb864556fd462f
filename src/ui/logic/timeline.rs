//! Pure time logic of the explorer: the visible time range that all lanes share (zoom, pan,
//! follow), and the playback state (play/pause, seek, selection, loop). No egui here; the
//! lanes map points with [`View::x_of`] / [`View::t_of`], and the audio device follows
//! [`Playback::position`].

use serde::{Deserialize, Serialize};

/// The shortest span the view zooms to (s).
pub const MIN_SPAN: f64 = 0.1;

/// The time range shown by every lane, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub start: f64,
    pub end: f64,
}

impl View {
    /// The whole clip (at least [`MIN_SPAN`]).
    pub fn full(duration: f64) -> View {
        View {
            start: 0.0,
            end: duration.max(MIN_SPAN),
        }
    }

    pub fn span(&self) -> f64 {
        self.end - self.start
    }

    /// Screen x of time `t` in a lane starting at `left` that is `width` wide.
    pub fn x_of(&self, t: f64, left: f32, width: f32) -> f32 {
        left + ((t - self.start) / self.span()) as f32 * width
    }

    /// Time at screen x.
    pub fn t_of(&self, x: f32, left: f32, width: f32) -> f64 {
        self.start + f64::from((x - left) / width.max(1.0)) * self.span()
    }

    /// Zooms by `factor` (< 1 zooms in) keeping time `anchor` at the same place on screen,
    /// clamped to the clip.
    pub fn zoom(&mut self, factor: f64, anchor: f64, duration: f64) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        let total = duration.max(MIN_SPAN);
        let span = (self.span() * factor).clamp(MIN_SPAN.min(total), total);
        let frac = ((anchor - self.start) / self.span()).clamp(0.0, 1.0);
        let start = anchor - frac * span;
        *self = View {
            start,
            end: start + span,
        };
        self.clamp(duration);
    }

    /// Shows `v`'s range, clamped to the clip (at least [`MIN_SPAN`] wide); a non-finite or
    /// empty range is ignored.
    pub fn set(&mut self, v: View, duration: f64) {
        if !(v.start.is_finite() && v.end.is_finite() && v.end > v.start) {
            return;
        }
        let mid = (v.start + v.end) / 2.0;
        let span = v.span().max(MIN_SPAN);
        *self = View {
            start: mid - span / 2.0,
            end: mid + span / 2.0,
        };
        self.clamp(duration);
    }

    /// Moves the view by `dt` seconds, clamped to the clip.
    pub fn pan(&mut self, dt: f64, duration: f64) {
        if !dt.is_finite() {
            return;
        }
        self.start += dt;
        self.end += dt;
        self.clamp(duration);
    }

    /// Keeps `t` in view: when it leaves the view (or gets into its last 5 %), the view pages so
    /// that `t` sits at 10 % of it.
    pub fn follow(&mut self, t: f64, duration: f64) {
        let span = self.span();
        if t < self.start || t > self.end - 0.05 * span {
            let start = t - 0.1 * span;
            *self = View {
                start,
                end: start + span,
            };
            self.clamp(duration);
        }
    }

    fn clamp(&mut self, duration: f64) {
        let total = duration.max(MIN_SPAN);
        let span = self.span().clamp(MIN_SPAN.min(total), total);
        let start = self.start.clamp(0.0, total - span);
        *self = View {
            start,
            end: start + span,
        };
    }
}

/// Play/pause, position, selection and loop; `advance` moves the clock when no audio device
/// drives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Playback {
    pub playing: bool,
    /// Playhead (s).
    pub position: f64,
    /// Selected range (s), start < end.
    pub selection: Option<(f64, f64)>,
    /// Loop the selection (or the clip) instead of stopping at its end.
    pub looping: bool,
    pub duration: f64,
}

impl Playback {
    pub fn new(duration: f64) -> Playback {
        Playback {
            playing: false,
            position: 0.0,
            selection: None,
            looping: false,
            duration: duration.max(0.0),
        }
    }

    /// The range playback stays in: the selection if any, else the clip.
    pub fn range(&self) -> (f64, f64) {
        self.selection.unwrap_or((0.0, self.duration))
    }

    /// Play/pause. Playing from the end (or outside the selection) starts over at its start.
    pub fn toggle(&mut self) {
        if self.playing {
            self.playing = false;
            return;
        }
        let (a, b) = self.range();
        if self.position < a || self.position >= b - 1e-6 {
            self.position = a;
        }
        self.playing = b > a;
    }

    pub fn seek(&mut self, t: f64) {
        if t.is_finite() {
            self.position = t.clamp(0.0, self.duration);
        }
    }

    /// Moves the playhead by `dt` seconds (arrow keys).
    pub fn step(&mut self, dt: f64) {
        self.seek(self.position + dt);
    }

    /// Sets the selection from two times in any order; a range shorter than 10 ms clears it.
    pub fn select(&mut self, a: f64, b: f64) {
        let (lo, hi) = (a.min(b).max(0.0), a.max(b).min(self.duration));
        self.selection = (hi - lo >= 0.01).then_some((lo, hi));
    }

    /// Plays the selection from its start.
    pub fn play_selection(&mut self) {
        if let Some((a, _)) = self.selection {
            self.position = a;
            self.playing = true;
        }
    }

    /// Advances the clock by `dt` seconds of playing; stops (or wraps, when looping) at the end
    /// of the range.
    pub fn advance(&mut self, dt: f64) {
        if !(self.playing && dt.is_finite() && dt > 0.0) {
            return;
        }
        self.set_played_position(self.position + dt);
    }

    /// Takes a position reported by the audio device, applying the same end/loop rule.
    pub fn set_played_position(&mut self, t: f64) {
        let (a, b) = self.range();
        if t >= b {
            if self.looping && b > a {
                self.position = a + (t - b) % (b - a);
            } else {
                self.position = b;
                self.playing = false;
            }
        } else {
            self.position = t.max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_and_t_are_inverse() {
        let v = View {
            start: 2.0,
            end: 6.0,
        };
        for t in [2.0, 3.3, 6.0] {
            let x = v.x_of(t, 100.0, 400.0);
            assert!((v.t_of(x, 100.0, 400.0) - t).abs() < 1e-5);
        }
        assert_eq!(v.x_of(4.0, 100.0, 400.0), 300.0);
    }

    #[test]
    fn zoom_keeps_anchor_and_clamps() {
        let mut v = View::full(10.0);
        let x = v.x_of(5.0, 0.0, 100.0);
        v.zoom(0.5, 5.0, 10.0);
        assert!((v.span() - 5.0).abs() < 1e-9);
        assert!((v.x_of(5.0, 0.0, 100.0) - x).abs() < 1e-4);
        v.zoom(100.0, 5.0, 10.0);
        assert_eq!(v, View::full(10.0));
        v.zoom(1e-9, 0.0, 10.0);
        assert!((v.span() - MIN_SPAN).abs() < 1e-9);
        assert_eq!(v.start, 0.0);
        v.zoom(f64::NAN, 1.0, 10.0);
        assert!((v.span() - MIN_SPAN).abs() < 1e-9);
    }

    #[test]
    fn set_clamps_to_the_clip() {
        let mut v = View::full(10.0);
        v.set(
            View {
                start: -2.0,
                end: 3.0,
            },
            10.0,
        );
        assert_eq!((v.start, v.end), (0.0, 5.0));
        v.set(
            View {
                start: 4.0,
                end: 4.01,
            },
            10.0,
        );
        assert!((v.span() - MIN_SPAN).abs() < 1e-9 && (v.start - 3.955).abs() < 1e-9);
        v.set(
            View {
                start: 3.0,
                end: f64::NAN,
            },
            10.0,
        );
        assert!((v.span() - MIN_SPAN).abs() < 1e-9);
        v.set(
            View {
                start: -5.0,
                end: 50.0,
            },
            10.0,
        );
        assert_eq!(v, View::full(10.0));
    }

    #[test]
    fn pan_stays_inside_the_clip() {
        let mut v = View {
            start: 2.0,
            end: 4.0,
        };
        v.pan(-5.0, 10.0);
        assert_eq!((v.start, v.end), (0.0, 2.0));
        v.pan(50.0, 10.0);
        assert_eq!((v.start, v.end), (8.0, 10.0));
    }

    #[test]
    fn follow_pages_when_the_playhead_leaves() {
        let mut v = View {
            start: 0.0,
            end: 2.0,
        };
        v.follow(1.0, 10.0);
        assert_eq!(v.start, 0.0);
        v.follow(1.95, 10.0);
        assert!((v.start - 1.75).abs() < 1e-9);
        v.follow(9.99, 10.0);
        assert_eq!(v.end, 10.0);
    }

    #[test]
    fn playback_stops_at_end_or_loops_the_selection() {
        let mut p = Playback::new(3.0);
        p.toggle();
        assert!(p.playing);
        p.advance(2.0);
        assert_eq!(p.position, 2.0);
        p.advance(2.0);
        assert!(!p.playing);
        assert_eq!(p.position, 3.0);
        // Playing again from the end starts over.
        p.toggle();
        assert_eq!(p.position, 0.0);

        p.select(2.0, 1.0);
        assert_eq!(p.selection, Some((1.0, 2.0)));
        p.looping = true;
        p.play_selection();
        p.advance(1.25);
        assert!(p.playing);
        assert!((p.position - 1.25).abs() < 1e-9);
        p.select(1.0, 1.001);
        assert_eq!(p.selection, None);
    }

    #[test]
    fn seek_and_step_clamp() {
        let mut p = Playback::new(3.0);
        p.seek(-1.0);
        assert_eq!(p.position, 0.0);
        p.step(10.0);
        assert_eq!(p.position, 3.0);
        p.seek(f64::NAN);
        assert_eq!(p.position, 3.0);
        // Paused: the clock does not move.
        p.seek(1.0);
        p.advance(1.0);
        assert_eq!(p.position, 1.0);
    }
}
