//! Mean and standard deviation of u8 pixels (as `v / 255`), exact through a histogram: what
//! the importers record in a data set's metadata. Imports no other module of the crate.

/// Mean and population standard deviation of `pixels / 255`, accumulated
/// exactly via a histogram and evaluated in f64. `None` if `pixels` is empty.
pub fn pixel_stats(pixels: &[u8]) -> Option<(f32, f32)> {
    let mut hist = [0u64; 256];
    for &p in pixels {
        hist[usize::from(p)] += 1;
    }
    histogram_stats(&hist)
}

/// [`pixel_stats`] from a histogram of pixel values (`hist[v]` = number of
/// pixels equal to `v`). `None` if the histogram is empty.
pub fn histogram_stats(hist: &[u64; 256]) -> Option<(f32, f32)> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let n = total as f64;
    let mean = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| c as f64 * (v as f64 / 255.0))
        .sum::<f64>()
        / n;
    let var = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| c as f64 * (v as f64 / 255.0 - mean).powi(2))
        .sum::<f64>()
        / n;
    Some((mean as f32, var.sqrt() as f32))
}
