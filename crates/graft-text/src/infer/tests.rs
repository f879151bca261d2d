//! [`FastEncoder`] against the dfdx graph ([`BertEncoder::forward`]) on a small random BERT,
//! and `erf` against a Taylor series.

use dfdx::prelude::*;

use super::{erf, FastEncoder, Layout};
use crate::bert::{BertEncoder, BertLayer, Embeddings, LayerNorm, Linear, Matrix, Vector};
use crate::config::BertConfig;
use crate::tokenize::pad;

fn matrix(dev: &Cpu, rows: usize, cols: usize) -> Matrix {
    dev.sample_normal_like(&(rows, cols)) * 0.5
}

fn vector(dev: &Cpu, n: usize) -> Vector {
    dev.sample_normal_like(&(n,)) * 0.5
}

fn linear(dev: &Cpu, inp: usize, out: usize) -> Linear {
    Linear {
        weight: matrix(dev, out, inp),
        bias: vector(dev, out),
    }
}

fn norm(dev: &Cpu, h: usize) -> LayerNorm {
    LayerNorm {
        weight: vector(dev, h) + 1.0,
        bias: vector(dev, h),
        eps: 1e-12,
    }
}

/// Hidden 16, 4 heads of 4, feed-forward 32, 2 blocks, 30 tokens, 12 positions.
pub(crate) fn tiny_bert() -> BertEncoder {
    let dev = Cpu::seed_from_u64(3);
    let (h, f) = (16, 32);
    let config = BertConfig {
        vocab_size: 30,
        hidden_size: h,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: f,
        max_position_embeddings: 12,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
        pad_token_id: 0,
        position_embedding_type: "absolute".into(),
    };
    let layers = (0..2)
        .map(|_| BertLayer {
            query: linear(&dev, h, h),
            key: linear(&dev, h, h),
            value: linear(&dev, h, h),
            attention_out: linear(&dev, h, h),
            attention_norm: norm(&dev, h),
            intermediate: linear(&dev, h, f),
            output: linear(&dev, f, h),
            output_norm: norm(&dev, h),
        })
        .collect();
    BertEncoder {
        embeddings: Embeddings {
            word: matrix(&dev, 30, h),
            position: matrix(&dev, 12, h),
            token_type: matrix(&dev, 2, h),
            norm: norm(&dev, h),
        },
        layers,
        config,
        dev,
    }
}

#[test]
fn fast_forward_equals_the_dfdx_graph_with_padding() {
    let bert = tiny_bert();
    let fast = FastEncoder::new(&bert);
    // Three texts of 5, 9 and 1 tokens: padded to 9.
    let tokens = pad(
        &[
            vec![2, 7, 11, 4, 3],
            vec![2, 19, 5, 5, 28, 13, 1, 9, 3],
            vec![2],
        ],
        0,
    );
    let input = bert.input(&tokens).unwrap();
    let want = bert.forward(&input).as_vec();
    let got = fast.forward(&tokens);
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 2e-5, "largest difference {worst}");
    let pooled =
        crate::bert::l2_normalize(bert.mean_pool::<NoneTape>(bert.forward(&input), &input));
    let emb = fast.sentence_embeddings(&got, &Layout::padded(&tokens));
    for (a, b) in emb.iter().zip(pooled.as_vec()) {
        assert!((a - b).abs() < 2e-5, "{a} vs {b}");
    }
}

#[test]
fn split_blocks_equal_the_whole_forward() {
    let bert = tiny_bert();
    let fast = FastEncoder::new(&bert);
    let tokens = pad(&[vec![2, 7, 11, 4, 3], vec![2, 9, 3]], 0);
    let layout = Layout::padded(&tokens);
    let mut x = fast.embed(&layout);
    fast.blocks(0..1, &mut x, &layout);
    fast.blocks(1..2, &mut x, &layout);
    assert_eq!(x, fast.forward(&tokens));
}

#[test]
fn the_packed_layout_gives_the_padded_real_rows_and_embeddings() {
    let bert = tiny_bert();
    let fast = FastEncoder::new(&bert);
    let tokens = pad(
        &[
            vec![2, 7, 11, 4, 3],
            vec![2, 19, 5, 5, 28, 13, 1, 9, 3],
            vec![2, 9],
        ],
        0,
    );
    let (padded, packed) = (Layout::padded(&tokens), Layout::packed(&tokens));
    assert_eq!(packed.rows(), 5 + 9 + 2);
    let full = fast.forward(&tokens);
    let mut x = fast.embed(&packed);
    fast.blocks(0..2, &mut x, &packed);
    let h = bert.config.hidden_size;
    for r in 0..3 {
        let ((a, len), (b, len_b)) = (packed.text(r), padded.text(r));
        assert_eq!(len, len_b);
        for (u, w) in x[a * h..(a + len) * h]
            .iter()
            .zip(&full[b * h..(b + len) * h])
        {
            assert!((u - w).abs() < 1e-5, "text {r}: {u} vs {w}");
        }
    }
    let (e1, e2) = (
        fast.embed_sentences(&tokens),
        fast.sentence_embeddings(&full, &padded),
    );
    for (u, w) in e1.iter().zip(&e2) {
        assert!((u - w).abs() < 1e-5, "{u} vs {w}");
    }
}

#[test]
fn erf_matches_its_taylor_series() {
    // erf x = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)), in f64, for |x| <= 3.
    let series = |x: f64| {
        let (mut term, mut sum) = (x, 0.0);
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    };
    for i in -300..=300 {
        let x = i as f64 / 100.0;
        let err = (erf(x as f32) as f64 - series(x)).abs();
        assert!(err < 3e-7, "erf({x}): error {err}");
    }
    assert_eq!(erf(10.0), 1.0);
    assert_eq!(erf(-10.0), -1.0);
}
