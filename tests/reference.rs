//! graft's networks against PyTorch: the reference tensors in tests/data were computed by
//! PyTorch (see ../shared/reference/README.md, copied here).

use dfdx::prelude::*;
use graft::nn::{MlpClassifier, Parameters};

use crate::util::{read_safetensors, rel_err, test_data};

#[test]
fn mlp_logits_loss_and_gradients_equal_pytorch() {
    let t = read_safetensors(&test_data("mlp_ref.safetensors"));
    let dev = Cpu::default();
    let mut model = MlpClassifier::new(&dev, 10).unwrap();
    model.visit_params_mut(&mut |name, p| {
        let (shape, values) = &t[&format!("param.{name}")];
        assert_eq!(&p.dims(), shape, "{name}");
        p.write_from(values);
    });
    let (_, input) = &t["input"];
    let (_, labels) = &t["labels"];
    let x: Tensor<(usize, Const<784>), f32, Cpu> = dev.tensor_from_vec(input.clone(), (8, Const));
    let logits = model.forward(x.traced(Gradients::leaky()));
    assert!(rel_err(&logits.as_vec(), &t["logits"].1) < 1e-4);

    let mut onehot = vec![0.0f32; 80];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * 10 + l as usize] = 1.0;
    }
    let onehot = dev.tensor_from_vec(onehot, (8, 10));
    let loss = (logits.log_softmax::<Axis<1>>() * onehot)
        .sum::<Rank0, _>()
        .negate();
    assert!(rel_err(&[loss.array()], &t["loss_sum"].1) < 1e-4);
    let mut grads = loss.backward();
    let mut checked = 0;
    model.visit_params(&mut |name, p| {
        let g = p.grad(&mut grads).unwrap().to_vec();
        let err = rel_err(&g, &t[&format!("grad.{name}")].1);
        assert!(err < 1e-4, "{name}: relative error {err}");
        checked += 1;
    });
    assert_eq!(checked, 6);
}
