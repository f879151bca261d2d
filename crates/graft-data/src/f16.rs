//! IEEE 754 binary16 ("half") conversions, without a dependency.
//!
//! [`f32_to_f16`] rounds to nearest, ties to even (the IEEE default), turns
//! values beyond the f16 range into ±infinity, produces subnormals where
//! needed and keeps NaNs NaN (quiet). [`f16_to_f32`] is exact.

/// Largest finite f16 value (65504).
pub const F16_MAX: f32 = 65504.0;

/// Converts an f32 to the bits of the nearest f16 (round to nearest, ties
/// to even). Overflow gives ±infinity, NaN gives a quiet NaN.
pub fn f32_to_f16(value: f32) -> u16 {
    let x = value.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x007f_ffff;
    if exp == 0xff {
        if man == 0 {
            return sign | 0x7c00;
        }
        // Quiet NaN; keep the top payload bits.
        return sign | 0x7e00 | (man >> 13) as u16;
    }
    // Exponent re-biased for f16 (bias 15 instead of 127).
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal f16 (or zero): value = m16 * 2^-24, m16 = m24 >> (14 - e).
        if e < -10 {
            // |value| < 2^-25: below half the smallest subnormal.
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rem > half || (rem == half && r & 1 == 1) {
            // May carry into the smallest normal (0x0400), which is correct.
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
        // A carry out of the mantissa bumps the exponent; out of the largest
        // exponent it gives exactly the infinity encoding 0x7c00.
        r += 1;
    }
    sign | r as u16
}

/// Converts f16 bits to the f32 of the same value (exact).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exp = u32::from((bits >> 10) & 0x1f);
    let man = u32::from(bits & 0x03ff);
    let magnitude = match exp {
        0 => {
            // Zero or subnormal: man * 2^-24, exact in f32.
            return f32::from_bits(sign) + f32::from_bits(sign | 0x3380_0000) * man as f32;
        }
        0x1f => 0x7f80_0000 | (man << 13),
        _ => ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(sign | magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(f32_to_f16(0.0), 0x0000);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // halfway to 2^16: ties to even = inf
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000); // tie -> even (0)
        assert_eq!(f32_to_f16(1.5 * 2f32.powi(-24)), 0x0002); // tie -> even (2)
        assert_eq!(f32_to_f16(2f32.powi(-14)), 0x0400);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
    }

    #[test]
    fn every_f16_round_trips() {
        for bits in 0..=u16::MAX {
            let f = f16_to_f32(bits);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
            } else {
                assert_eq!(f32_to_f16(f), bits, "{bits:#06x} -> {f}");
            }
        }
    }
}
