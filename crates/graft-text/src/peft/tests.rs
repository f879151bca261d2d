//! [`PeftNet`] on a small random BERT: `B = 0` leaves the model exactly as it was, and the
//! merged encoder equals the unmerged network.

use dfdx::prelude::*;
use graft_data::SplitMix64;

use super::{parse_targets, EmbeddingSums, LoraSpec, PeftMethod, PeftNet};
use crate::bert::{l2_normalize, BertEncoder, Proj};
use crate::infer::tests::tiny_bert;
use crate::infer::FastEncoder;
use crate::tokenize::{pad, TokenBatch};

fn tokens() -> TokenBatch {
    pad(
        &[
            vec![2, 7, 11, 4, 3],
            vec![2, 19, 5, 5, 28, 13, 1, 9, 3],
            vec![2, 9],
        ],
        0,
    )
}

/// Sentence embeddings of the training path (the dfdx graph, adapters unmerged).
fn unmerged(bert: &BertEncoder, net: &PeftNet, tokens: &TokenBatch) -> Vec<f32> {
    let input = bert.input(tokens).unwrap();
    let sums = EmbeddingSums::new(bert);
    let h = bert.config.hidden_size;
    let x = bert
        .dev
        .tensor_from_vec(sums.rows(tokens), (tokens.batch * tokens.seq, h));
    l2_normalize(net.encode::<NoneTape>(x, &input, None)).as_vec()
}

/// The same through the dfdx graph of a plain encoder.
fn plain(bert: &BertEncoder, tokens: &TokenBatch) -> Vec<f32> {
    let input = bert.input(tokens).unwrap();
    l2_normalize(bert.mean_pool::<NoneTape>(bert.forward(&input), &input)).as_vec()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn randomise_b(net: &mut PeftNet, seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for l in &mut net.layers {
        for a in l.adapters.iter_mut().flatten() {
            let v: Vec<f32> = (0..a.b.as_vec().len())
                .map(|_| 2.0 * rng.next_f32() - 1.0)
                .collect();
            a.b.copy_from(&v);
        }
    }
}

#[test]
fn zero_b_gives_exactly_the_base_model() {
    let bert = tiny_bert();
    let all = parse_targets("query,key,value,dense").unwrap();
    assert_eq!(all, Proj::ALL.to_vec());
    let spec = LoraSpec {
        targets: all,
        ..LoraSpec::new(3, 6.0)
    };
    let net = PeftNet::new(&bert, PeftMethod::Lora(spec), 4, 1);
    let merged = net.merged_encoder(&bert);
    let t = tokens();
    // The inference path: bit for bit.
    assert_eq!(
        FastEncoder::new(&merged).embed_sentences(&t),
        FastEncoder::new(&bert).embed_sentences(&t)
    );
    // The training path with zero B adds exactly zero to every projection: equal to the
    // same frozen network without adapters.
    let bare = PeftNet::new(&bert, PeftMethod::Lora(LoraSpec::new(3, 6.0)), 4, 1);
    let mut none = bare.clone();
    for l in &mut none.layers {
        l.adapters.iter_mut().for_each(|a| *a = None);
    }
    assert_eq!(unmerged(&bert, &net, &t), unmerged(&bert, &none, &t));
    // ...which is the base model up to the GEMMs' rounding.
    assert!(worst(&unmerged(&bert, &none, &t), &plain(&bert, &t)) < 1e-5);
}

#[test]
fn merged_lora_equals_unmerged() {
    let bert = tiny_bert();
    for targets in ["query,value", "query,key,value,dense"] {
        let spec = LoraSpec {
            targets: parse_targets(targets).unwrap(),
            ..LoraSpec::new(4, 8.0)
        };
        let mut net = PeftNet::new(&bert, PeftMethod::Lora(spec), 4, 2);
        randomise_b(&mut net, 5);
        let t = tokens();
        let merged = net.merged_encoder(&bert);
        let base = plain(&bert, &t);
        let (u, m) = (unmerged(&bert, &net, &t), plain(&merged, &t));
        assert!(
            worst(&u, &base) > 1e-3,
            "the adapters change the embeddings"
        );
        let w = worst(&u, &m);
        assert!(w < 1e-5, "{targets}: merged vs unmerged differ by {w}");
        let fast = FastEncoder::new(&merged).embed_sentences(&t);
        let w = worst(&u, &fast);
        assert!(
            w < 1e-5,
            "{targets}: inference path vs unmerged differ by {w}"
        );
    }
}

#[test]
fn bitfit_merged_equals_unmerged() {
    let bert = tiny_bert();
    let mut net = PeftNet::new(&bert, PeftMethod::BitFit, 3, 0);
    let mut rng = SplitMix64::new(8);
    let mut bump = |t: &mut Tensor<(usize,), f32, Cpu>| {
        let v: Vec<f32> = t
            .as_vec()
            .iter()
            .map(|x| x + rng.next_f32() - 0.5)
            .collect();
        t.copy_from(&v);
    };
    bump(&mut net.embed_norm.bias);
    for l in &mut net.layers {
        for fl in &mut l.linears {
            bump(&mut fl.bias);
        }
        bump(&mut l.attention_norm.weight);
        bump(&mut l.output_norm.bias);
    }
    let t = tokens();
    let merged = net.merged_encoder(&bert);
    let (u, m) = (unmerged(&bert, &net, &t), plain(&merged, &t));
    assert!(worst(&u, &plain(&bert, &t)) > 1e-3);
    assert!(worst(&u, &m) < 1e-5, "{}", worst(&u, &m));
    // 6 biases, 2 LayerNorms per block, the embeddings' LayerNorm and the head.
    let c = &bert.config;
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let per_block = 5 * h + f + 4 * h;
    assert_eq!(
        net.trainable_parameters(),
        c.num_hidden_layers * per_block + 2 * h + 3 * h + 3
    );
}

#[test]
fn targets_parse_as_peft_names() {
    assert_eq!(
        parse_targets("value, query").unwrap(),
        vec![Proj::Query, Proj::Value]
    );
    assert!(parse_targets("qkv").is_err());
    assert!(parse_targets("").is_err());
    assert_eq!(
        super::target_names(&parse_targets("dense,key").unwrap()),
        vec!["key", "dense"]
    );
}
