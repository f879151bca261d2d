//! graft-advise's tests, one binary: estimators against NumPy references, properties, and
//! `advise` end to end on a small synthetic data set.

mod advise_end_to_end;
mod lite0_source;
mod properties;
mod recommendation;
mod reference;
