//! What the attention lane marks for a selection: kept tokens (members of merged tokens
//! included), segment or window boundaries, merged groups as spans. No egui here.

use crate::prune::{Method, Selection};

/// What the attention lane marks for a selection over `n` tokens.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Marks {
    /// Kept tokens, members of merged tokens included.
    pub kept: Vec<bool>,
    /// Segment or window boundaries.
    pub bounds: Vec<usize>,
    /// Merged groups of adjacent tokens (`atome`, `merge` runs), first and last token: drawn as
    /// spans.
    pub spans: Vec<(usize, usize)>,
}

pub fn highlight(sel: &Selection, n: usize, window_tokens: usize) -> Marks {
    let mut kept = vec![false; n];
    let members = sel.merged.iter().flat_map(|c| c.parts.iter().map(|p| p.0));
    for t in sel.kept.iter().copied().chain(members) {
        if let Some(m) = kept.get_mut(t) {
            *m = true;
        }
    }
    let bounds = match (sel.method, sel.segments) {
        (Method::Window, Some(_)) => (0..n).step_by(window_tokens.max(1)).collect(),
        (_, Some(s)) if s > 0 => crate::prune::segment_bounds(n, s),
        _ => Vec::new(),
    };
    let spans = sel
        .merged
        .iter()
        .filter_map(|c| {
            let lo = c.parts.iter().map(|p| p.0).min()?;
            let hi = c.parts.iter().map(|p| p.0).max()?;
            (hi - lo + 1 == c.parts.len()).then_some((lo, hi))
        })
        .collect();
    Marks {
        kept,
        bounds,
        spans,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlight_marks_kept_and_merged_members() {
        let sel = Selection {
            method: Method::Segmentwise,
            k: 2,
            segments: Some(2),
            kept: vec![1, 6],
            merged: vec![crate::prune::Combination {
                target: 6,
                parts: vec![(6, 0.5), (7, 0.5)],
            }],
        };
        let m = highlight(&sel, 8, 3);
        assert_eq!(
            m.kept,
            vec![false, true, false, false, false, false, true, true]
        );
        assert_eq!(m.bounds, vec![0, 4, 8]);
        assert_eq!(m.spans, vec![(6, 7)]);
    }
}
