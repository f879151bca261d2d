//! Energy and CO₂ of training runs: measured with Linux RAPL counters when the machine
//! exposes them, estimated from the FLOP count otherwise.
//!
//! RAPL (Running Average Power Limit) is exposed by the kernel's powercap framework as
//! `/sys/class/powercap/intel-rapl:<N>/energy_uj`, a cumulative micro-joule counter per CPU
//! package (AMD processors use the same `intel-rapl` driver). The counter wraps to zero after
//! `max_energy_range_uj`. Since Linux 5.10 `energy_uj` is readable by root only; without
//! permission, or without powercap at all (virtual machines, containers, non-x86 machines),
//! [`EnergyMeter::start`] returns `None` and callers fall back to [`estimate_joules`].
//!
//! Both figures cover the CPU packages only: not DRAM, disks, fans, power-supply losses or a
//! GPU. Treat them as an order of magnitude, and say which one a report used
//! ([`EnergySource`]).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::TransferError;

/// The default powercap root.
pub const POWERCAP_ROOT: &str = "/sys/class/powercap";

/// Estimated energy per floating-point operation of CPU training, in joules: **3e-10 J/FLOP**.
///
/// This is an estimate, not a measurement. Derivation: a 2-core laptop CPU package draws
/// about 15 W under sustained load (a typical TDP for that class) and, with AVX2 f32 matrix
/// kernels, sustains on the order of 50 GFLOP/s in training; 15 W / 50e9 FLOP/s =
/// 3e-10 J/FLOP. Faster or more efficient hardware (server CPUs, GPUs) does better per FLOP,
/// and small-batch or memory-bound training does worse, easily by an order of magnitude in
/// either direction. Only the package is counted, as with RAPL.
pub const JOULES_PER_FLOP: f64 = 3e-10;

/// Default carbon intensity of electricity, in grams of CO₂ per kWh: **475 g/kWh**.
///
/// Roughly the world-average intensity of electricity generation in recent years (the IEA
/// gave about 475 g/kWh for 2018; later estimates are in the 440-480 range). Local grids
/// range from under 50 (hydro, nuclear) to over 700 (coal); pass the local figure to
/// [`co2_grams`] when it is known.
pub const DEFAULT_GRID_G_PER_KWH: f64 = 475.0;

/// Joules in one kilowatt-hour.
pub const JOULES_PER_KWH: f64 = 3.6e6;

/// Where an energy figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EnergySource {
    /// Measured with RAPL package counters.
    Rapl,
    /// Estimated as FLOPs × `joules_per_flop`.
    FlopEstimate {
        /// The constant used (normally [`JOULES_PER_FLOP`]).
        joules_per_flop: f64,
    },
}

/// Estimated energy in joules of `flops` floating-point operations, with [`JOULES_PER_FLOP`].
pub fn estimate_joules(flops: f64) -> f64 {
    flops * JOULES_PER_FLOP
}

/// Grams of CO₂ emitted producing `joules` of electricity at `grid_g_per_kwh` grams per kWh
/// (see [`DEFAULT_GRID_G_PER_KWH`]).
pub fn co2_grams(joules: f64, grid_g_per_kwh: f64) -> f64 {
    joules / JOULES_PER_KWH * grid_g_per_kwh
}

/// One RAPL package counter.
#[derive(Debug, Clone)]
struct Domain {
    /// The `energy_uj` file.
    counter: PathBuf,
    /// The value at which the counter wraps to zero.
    max_range_uj: u64,
    /// The last value read.
    last_uj: u64,
}

/// Measures CPU package energy with RAPL counters.
///
/// Each call to [`joules_since_start`](Self::joules_since_start) adds what every package
/// counter advanced since the previous reading, allowing for one wrap-around in between. A
/// counter wraps after `max_energy_range_uj` (typically 262 kJ: hours at laptop power, tens of
/// minutes for a busy server package), so for long runs call it periodically (say every
/// minute) and the total stays exact.
#[derive(Debug, Clone)]
pub struct EnergyMeter {
    domains: Vec<Domain>,
    total_uj: u128,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `name` is a top-level powercap zone `intel-rapl:<digits>` (subzones such as
/// `intel-rapl:0:0` are the cores or DRAM inside a package and would double count).
fn is_top_level_zone(name: &str) -> bool {
    name.strip_prefix("intel-rapl:")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl EnergyMeter {
    /// Starts measuring with the system's RAPL counters (under [`POWERCAP_ROOT`]); `None`
    /// when there are none or they are not readable.
    pub fn start() -> Option<EnergyMeter> {
        Self::start_at(Path::new(POWERCAP_ROOT))
    }

    /// Starts measuring with the package zones found under `root` (a powercap directory
    /// laid out like `/sys/class/powercap`): every `intel-rapl:<N>` whose `name` starts with
    /// `package` and whose `energy_uj` and `max_energy_range_uj` are readable. Platform
    /// zones (`psys`), which include the packages, are skipped. `None` when no zone
    /// qualifies.
    pub fn start_at(root: &Path) -> Option<EnergyMeter> {
        let mut zones: Vec<PathBuf> = std::fs::read_dir(root)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(is_top_level_zone))
            .map(|e| e.path())
            .collect();
        zones.sort();
        let mut domains = Vec::new();
        for zone in zones {
            let is_package = std::fs::read_to_string(zone.join("name"))
                .is_ok_and(|n| n.trim().starts_with("package"));
            if !is_package {
                continue;
            }
            let counter = zone.join("energy_uj");
            let (Some(last_uj), Some(max_range_uj)) = (
                read_u64(&counter),
                read_u64(&zone.join("max_energy_range_uj")),
            ) else {
                continue;
            };
            if max_range_uj == 0 || last_uj > max_range_uj {
                continue;
            }
            domains.push(Domain {
                counter,
                max_range_uj,
                last_uj,
            });
        }
        (!domains.is_empty()).then_some(EnergyMeter {
            domains,
            total_uj: 0,
        })
    }

    /// Number of package counters being read.
    pub fn packages(&self) -> usize {
        self.domains.len()
    }

    /// Joules used by all packages since [`start`](Self::start), reading the counters now.
    ///
    /// A counter found below its previous value is taken to have wrapped once:
    /// `max_energy_range_uj - previous + now`.
    pub fn joules_since_start(&mut self) -> Result<f64, TransferError> {
        for d in &mut self.domains {
            let now = std::fs::read_to_string(&d.counter)
                .map_err(|source| TransferError::Io {
                    path: d.counter.clone(),
                    source,
                })?
                .trim()
                .parse::<u64>()
                .map_err(|e| {
                    TransferError::Config(format!(
                        "{}: not an energy counter ({e})",
                        d.counter.display()
                    ))
                })?;
            let delta = if now >= d.last_uj {
                now - d.last_uj
            } else {
                d.max_range_uj.saturating_sub(d.last_uj) + now
            };
            self.total_uj += u128::from(delta);
            d.last_uj = now;
        }
        Ok(self.total_uj as f64 * 1e-6)
    }
}

/// The energy of a run: measured by `meter` when there is one and it can still be read,
/// otherwise estimated from `flops` with [`JOULES_PER_FLOP`]. Returns joules and their source.
pub fn joules_or_estimate(meter: Option<&mut EnergyMeter>, flops: f64) -> (f64, EnergySource) {
    match meter.map(|m| m.joules_since_start()) {
        Some(Ok(joules)) => (joules, EnergySource::Rapl),
        _ => (
            estimate_joules(flops),
            EnergySource::FlopEstimate {
                joules_per_flop: JOULES_PER_FLOP,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake powercap tree in a fresh temporary directory, removed on drop.
    struct FakePowercap(PathBuf);

    impl FakePowercap {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "graft-energy-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn zone(&self, zone: &str, name: &str, energy: u64, max: u64) {
            let z = self.0.join(zone);
            std::fs::create_dir_all(&z).unwrap();
            std::fs::write(z.join("name"), format!("{name}\n")).unwrap();
            self.set(zone, energy);
            std::fs::write(z.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
        }

        fn set(&self, zone: &str, energy: u64) {
            std::fs::write(self.0.join(zone).join("energy_uj"), format!("{energy}\n")).unwrap();
        }
    }

    impl Drop for FakePowercap {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn co2_by_hand() {
        // 3.6e6 J = 1 kWh.
        assert!((co2_grams(3.6e6, 400.0) - 400.0).abs() < 1e-9);
        assert!((co2_grams(1.8e6, DEFAULT_GRID_G_PER_KWH) - 237.5).abs() < 1e-9);
        assert_eq!(co2_grams(0.0, 400.0), 0.0);
        // 1e15 FLOPs at 3e-10 J/FLOP = 3e5 J = 1/12 kWh.
        assert!((estimate_joules(1e15) - 3e5).abs() < 1e-6);
        assert!((co2_grams(estimate_joules(1e15), 480.0) - 40.0).abs() < 1e-9);
    }

    #[test]
    fn reads_package_zones_only() {
        let fake = FakePowercap::new("zones");
        fake.zone("intel-rapl:0", "package-0", 1_000_000, 262_143_328_850);
        fake.zone("intel-rapl:1", "package-1", 5_000_000, 262_143_328_850);
        // Subzones and platform zones must not be counted.
        fake.zone("intel-rapl:0:0", "core", 0, 262_143_328_850);
        fake.zone("intel-rapl:2", "psys", 0, 262_143_328_850);
        fake.zone("intel-rapl-mmio:0", "package-0", 0, 262_143_328_850);
        let mut meter = EnergyMeter::start_at(&fake.0).expect("two package zones");
        assert_eq!(meter.packages(), 2);
        assert_eq!(meter.joules_since_start().unwrap(), 0.0);
        fake.set("intel-rapl:0", 3_500_000); // +2.5 J
        fake.set("intel-rapl:1", 6_000_000); // +1.0 J
        fake.set("intel-rapl:0:0", 900_000_000);
        fake.set("intel-rapl:2", 900_000_000);
        let j = meter.joules_since_start().unwrap();
        assert!((j - 3.5).abs() < 1e-9, "{j}");
        // Readings accumulate.
        fake.set("intel-rapl:1", 7_000_000);
        assert!((meter.joules_since_start().unwrap() - 4.5).abs() < 1e-9);
        let (j, source) = joules_or_estimate(Some(&mut meter), 1e12);
        assert!((j - 4.5).abs() < 1e-9);
        assert_eq!(source, EnergySource::Rapl);
    }

    #[test]
    fn handles_wrap_around() {
        let fake = FakePowercap::new("wrap");
        fake.zone("intel-rapl:0", "package-0", 9_000_000, 10_000_000);
        let mut meter = EnergyMeter::start_at(&fake.0).unwrap();
        fake.set("intel-rapl:0", 9_500_000); // +0.5 J
        assert!((meter.joules_since_start().unwrap() - 0.5).abs() < 1e-9);
        fake.set("intel-rapl:0", 2_000_000); // wrapped: +0.5 J to the top, +2 J after
        assert!((meter.joules_since_start().unwrap() - 3.0).abs() < 1e-9);
        fake.set("intel-rapl:0", 9_000_000); // +7 J
        assert!((meter.joules_since_start().unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn no_readable_counters_means_no_meter() {
        let fake = FakePowercap::new("none");
        assert!(EnergyMeter::start_at(&fake.0).is_none());
        assert!(EnergyMeter::start_at(&fake.0.join("missing")).is_none());
        // A zone without its counter (as when energy_uj is root-only) is skipped.
        fake.zone("intel-rapl:0", "package-0", 1, 10);
        std::fs::remove_file(fake.0.join("intel-rapl:0").join("energy_uj")).unwrap();
        assert!(EnergyMeter::start_at(&fake.0).is_none());
        // Without a meter, the FLOP estimate is used and labelled.
        let (j, source) = joules_or_estimate(None, 1e12);
        assert!((j - 300.0).abs() < 1e-9);
        assert_eq!(
            source,
            EnergySource::FlopEstimate {
                joules_per_flop: JOULES_PER_FLOP
            }
        );
    }

    #[test]
    fn a_vanished_counter_is_an_error_naming_the_file() {
        let fake = FakePowercap::new("vanish");
        fake.zone("intel-rapl:0", "package-0", 1, 10);
        let mut meter = EnergyMeter::start_at(&fake.0).unwrap();
        std::fs::remove_file(fake.0.join("intel-rapl:0").join("energy_uj")).unwrap();
        let err = meter.joules_since_start().unwrap_err().to_string();
        assert!(err.contains("energy_uj"), "{err}");
        // ... and joules_or_estimate falls back to the estimate.
        let (_, source) = joules_or_estimate(Some(&mut meter), 1.0);
        assert!(matches!(source, EnergySource::FlopEstimate { .. }));
    }

    #[test]
    fn zone_names() {
        assert!(is_top_level_zone("intel-rapl:0"));
        assert!(is_top_level_zone("intel-rapl:12"));
        assert!(!is_top_level_zone("intel-rapl:0:1"));
        assert!(!is_top_level_zone("intel-rapl:"));
        assert!(!is_top_level_zone("intel-rapl-mmio:0"));
    }
}
