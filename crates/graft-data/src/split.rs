//! Deterministic train/test split rules.

/// Which side of a split to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The training part.
    Train,
    /// The test part.
    Test,
}

/// A deterministic rule assigning each sample to [`Part::Train`] or
/// [`Part::Test`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplitRule {
    /// Within each class, in original file order, the `j`-th sample of the
    /// class (`j = 0, 1, ...`) is test iff `j % modulus == test_remainder`.
    ///
    /// `j` is always computed from the data set's own labels over the whole
    /// file, never from a view's positions, so splitting a subset of classes
    /// gives exactly the same images as splitting the whole data set.
    ModuloWithinClass {
        /// The modulus (at least 1).
        modulus: usize,
        /// The remainder that marks test samples (less than `modulus`).
        test_remainder: usize,
    },
}

impl SplitRule {
    /// Animal-MNIST's rule: `j % 5 == 4` is test, i.e. 800 train + 200 test
    /// per class of 1000.
    pub const ANIMAL_MNIST: SplitRule = SplitRule::ModuloWithinClass {
        modulus: 5,
        test_remainder: 4,
    };

    /// Checks the rule's parameters; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            SplitRule::ModuloWithinClass {
                modulus,
                test_remainder,
            } => {
                if modulus == 0 {
                    Err("split modulus must be at least 1".into())
                } else if test_remainder >= modulus {
                    Err(format!(
                        "split test_remainder {test_remainder} must be smaller than modulus {modulus}"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The part of the sample that is the `class_rank`-th of its class in
    /// file order. A rule that fails [`validate`](Self::validate) puts
    /// everything in [`Part::Train`].
    pub fn part_of(&self, class_rank: usize) -> Part {
        match *self {
            SplitRule::ModuloWithinClass {
                modulus,
                test_remainder,
            } => {
                if class_rank.checked_rem(modulus) == Some(test_remainder) {
                    Part::Test
                } else {
                    Part::Train
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn animal_mnist_rule() {
        let r = SplitRule::ANIMAL_MNIST;
        assert!(r.validate().is_ok());
        let tests = (0..1000).filter(|&j| r.part_of(j) == Part::Test).count();
        assert_eq!(tests, 200);
        assert_eq!(r.part_of(4), Part::Test);
        assert_eq!(r.part_of(5), Part::Train);
    }

    #[test]
    fn invalid_rules() {
        let zero = SplitRule::ModuloWithinClass {
            modulus: 0,
            test_remainder: 0,
        };
        assert!(zero.validate().is_err());
        assert_eq!(zero.part_of(3), Part::Train);
        let big = SplitRule::ModuloWithinClass {
            modulus: 3,
            test_remainder: 3,
        };
        assert!(big.validate().is_err());
    }
}
