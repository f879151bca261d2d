//! The `scratch` baseline's features: a bag of words (lower-cased alphanumeric unigrams and
//! bigrams, hashed into a fixed number of buckets), weighted by TF-IDF fitted on the
//! training texts only, each row L2-normalised.

/// A sparse feature row: `(bucket, value)` pairs, buckets ascending and distinct.
pub type SparseRow = Vec<(u32, f32)>;

/// Buckets of the hashed vocabulary (2^18).
pub const DEFAULT_BUCKETS: usize = 1 << 18;

/// Lower-cased runs of alphanumeric characters (apostrophes inside words kept).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || (c == '\'' && !cur.is_empty()) {
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur).trim_end_matches('\'').to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur.trim_end_matches('\'').to_string());
    }
    out
}

/// FNV-1a 64 of `parts` joined by a separator byte that no word contains.
fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Term counts per bucket of one text (unigrams and bigrams).
fn counts(text: &str, buckets: usize) -> SparseRow {
    let w = words(text);
    let mut ids: Vec<u32> = w
        .iter()
        .map(|a| (hash(&[a]) % buckets as u64) as u32)
        .chain(
            w.windows(2)
                .map(|p| (hash(&[&p[0], &p[1]]) % buckets as u64) as u32),
        )
        .collect();
    ids.sort_unstable();
    let mut row: SparseRow = Vec::new();
    for id in ids {
        match row.last_mut() {
            Some((last, c)) if *last == id => *c += 1.0,
            _ => row.push((id, 1.0)),
        }
    }
    row
}

/// A fitted TF-IDF bag of words.
#[derive(Debug, Clone)]
pub struct BagOfWords {
    buckets: usize,
    idf: Vec<f32>,
}

impl BagOfWords {
    /// Fits the inverse document frequencies on `texts` (smoothed as scikit-learn does:
    /// `ln((1 + n) / (1 + df)) + 1`).
    pub fn fit(texts: &[&str], buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let mut df = vec![0u32; buckets];
        for t in texts {
            for (b, _) in counts(t, buckets) {
                df[b as usize] += 1;
            }
        }
        let n = texts.len() as f32;
        let idf = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        Self { buckets, idf }
    }

    /// Width of a feature row.
    pub fn dim(&self) -> usize {
        self.buckets
    }

    /// The L2-normalised TF-IDF row of `text`.
    pub fn transform(&self, text: &str) -> SparseRow {
        let mut row = counts(text, self.buckets);
        for (b, v) in &mut row {
            *v *= self.idf[*b as usize];
        }
        let norm = row.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for (_, v) in &mut row {
                *v /= norm;
            }
        }
        row
    }
}

/// A dense row as a sparse one (every index present).
pub fn dense_row(values: &[f32]) -> SparseRow {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_bigrams_by_hand() {
        assert_eq!(
            words("Don't PANIC, it's 42!"),
            vec!["don't", "panic", "it's", "42"]
        );
        // "a b a": unigrams a, b, a and bigrams (a b), (b a): 4 distinct buckets of
        // counts 2, 1, 1, 1 when nothing collides.
        let row = counts("a b a", 1 << 20);
        let mut c: Vec<f32> = row.iter().map(|&(_, v)| v).collect();
        c.sort_by(|x, y| y.total_cmp(x));
        assert_eq!(c, vec![2.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn tf_idf_weights_rare_words_up() {
        // Two documents: "x" appears in both (idf = ln(3/3) + 1 = 1), "y" in one
        // (idf = ln(3/2) + 1). The row of "x y" has unigrams x, y and bigram (x y) (df 1).
        let bow = BagOfWords::fit(&["x y", "x"], 1 << 20);
        let row = bow.transform("x y");
        let rare = (1.5f32).ln() + 1.0;
        let norm = (1.0 + 2.0 * rare * rare).sqrt();
        let mut v: Vec<f32> = row.iter().map(|&(_, v)| v).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let want = [1.0 / norm, rare / norm, rare / norm];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?} vs {want:?}");
        }
        assert!(bow.transform("").is_empty());
    }
}
