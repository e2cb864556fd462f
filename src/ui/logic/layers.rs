//! The layer heat map's logic: every encoder layer's scores as rows of pixel columns, and which
//! row a point of the layer lane is. No egui here.

use super::pool;
use crate::scores::{HeadReduce, LayerScores};

/// One row per layer (the first first), `cols` values each: the layer's scores reduced over
/// heads by `reduce`, max-pooled to the columns and over the row's own maximum. None for fewer
/// than two layers or no tokens (nothing to compare).
pub fn rows(layers: &[LayerScores], reduce: HeadReduce, cols: usize) -> Option<Vec<Vec<f32>>> {
    let n = layers.first()?.mean.len();
    if layers.len() < 2 || n == 0 {
        return None;
    }
    let rows = layers
        .iter()
        .map(|l| pool::over_max(&pool::max_pool(l.get(reduce), cols)))
        .collect();
    Some(rows)
}

/// Which row of the layer lane `y` (in `[0, 1]`, top row first) is.
pub fn layer_at(y: f64, layers: usize) -> Option<usize> {
    ((0.0..=1.0).contains(&y) && layers > 0)
        .then(|| (((1.0 - y) * layers as f64) as usize).min(layers - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_run_top_down() {
        assert_eq!(layer_at(0.9, 4), Some(0));
        assert_eq!(layer_at(0.0, 4), Some(3));
        assert_eq!(layer_at(1.2, 4), None);
    }

    #[test]
    fn each_row_is_over_its_own_maximum() {
        let layer = |layer, v: Vec<f32>| LayerScores {
            layer,
            mean: v.clone(),
            max: v,
        };
        let l = [
            layer(0, vec![1.0, 2.0, 4.0, 8.0]),
            layer(1, vec![3.0, 0.0, 0.0, 1.5]),
        ];
        let r = rows(&l, HeadReduce::Mean, 2).unwrap();
        assert_eq!(r, vec![vec![0.25, 1.0], vec![1.0, 0.5]]);
        assert!(rows(&l[..1], HeadReduce::Mean, 2).is_none());
    }
}
