//! L2-SP regularisation (Li, Grandvalet & Davoine, 2018) as an analytic gradient hook.

use graft_nn::Parameters;

/// L2-SP (Li, Grandvalet & Davoine, 2018): `alpha/2 |w - w0|^2` over the pretrained
/// (backbone) weights plus `beta/2 |w|^2` over the new head.
#[derive(Debug, Clone, PartialEq)]
pub struct L2Sp {
    /// Weight of the pull towards the starting point.
    pub alpha: f32,
    /// Weight decay of the new head.
    pub beta: f32,
    /// The starting (pretrained) backbone weights, by parameter name.
    pub start: std::collections::HashMap<String, Vec<f32>>,
}

impl L2Sp {
    /// The penalty's value for `model`'s current weights (`head` names the head's module).
    pub fn penalty(&self, model: &impl Parameters, head: &str) -> f64 {
        let mut total = 0.0f64;
        model.visit_params(&mut |name, p| {
            let w = p.to_vec();
            total += match self.start.get(name) {
                Some(w0) if !is_head(name, head) => {
                    0.5 * self.alpha as f64
                        * w.iter()
                            .zip(w0)
                            .map(|(a, b)| ((a - b) as f64).powi(2))
                            .sum::<f64>()
                }
                _ => 0.5 * self.beta as f64 * w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>(),
            };
        });
        total
    }

    /// Adds the penalty's gradient for parameter `name` (weights `w`) to `g`.
    pub fn add_gradient(&self, name: &str, head: &str, w: &[f32], g: &mut [f32]) {
        match self.start.get(name) {
            Some(w0) if !is_head(name, head) => {
                for ((gi, wi), w0i) in g.iter_mut().zip(w).zip(w0) {
                    *gi += self.alpha * (wi - w0i);
                }
            }
            _ => {
                for (gi, wi) in g.iter_mut().zip(w) {
                    *gi += self.beta * wi;
                }
            }
        }
    }
}

fn is_head(name: &str, head: &str) -> bool {
    name.strip_prefix(head).is_some_and(|r| r.starts_with('.'))
}
