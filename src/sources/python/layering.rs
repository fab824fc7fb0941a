//! How the wheels of one `python:` source are split into layers.
//!
//! * Wheels of at least `own_layer_min_bytes` (default 32 MiB, as pinned)
//!   get a layer each: torch, triton and the big `nvidia-*` libraries, so
//!   each caches and uploads on its own.
//! * The others go into `groups` buckets (default 8) chosen by a hash of the
//!   normalised package name, so bumping or adding one package changes only
//!   the layer of its bucket; every other layer keeps its digest.
//! * At most `max_layers` layers (default 32, never above 127, the image
//!   limit): when more wheels qualify for a layer of their own than the
//!   budget leaves, the smallest of them join their buckets.
//!
//! Layer order: own layers by package name, then buckets by number.

use crate::digest::Digest;

/// Default size from which a wheel gets its own layer.
pub const DEFAULT_OWN_LAYER_MIN_BYTES: u64 = 32 << 20;
/// Default number of buckets for the other wheels.
pub const DEFAULT_GROUPS: u32 = 8;
/// Default most layers one `python:` source makes.
pub const DEFAULT_MAX_LAYERS: u32 = 32;
/// The most layers an image may have (what common runtimes accept).
pub const MAX_IMAGE_LAYERS: usize = 127;

/// The split settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPolicy {
    /// Size from which a wheel gets its own layer.
    pub own_layer_min_bytes: u64,
    /// Buckets for the others.
    pub groups: u32,
    /// Layer budget of the source.
    pub max_layers: u32,
}

impl Default for SplitPolicy {
    fn default() -> Self {
        SplitPolicy {
            own_layer_min_bytes: DEFAULT_OWN_LAYER_MIN_BYTES,
            groups: DEFAULT_GROUPS,
            max_layers: DEFAULT_MAX_LAYERS,
        }
    }
}

/// One planned layer: its part name and the indices of its wheels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// `torch`, `nvidia-cudnn-cu12`, `group-3`.
    pub name: String,
    /// Indices into the wheel list, in list order.
    pub wheels: Vec<usize>,
}

/// The bucket of a package: the first 8 bytes of SHA-256 of its normalised name.
pub fn bucket_of(name: &str, groups: u32) -> u32 {
    let d = Digest::of(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    (u64::from_be_bytes(b) % u64::from(groups.max(1))) as u32
}

/// Splits `wheels` (normalised name, size) into layers.
pub fn split(wheels: &[(String, u64)], policy: &SplitPolicy) -> Vec<LayerPlan> {
    let max = policy.max_layers.clamp(1, MAX_IMAGE_LAYERS as u32) as usize;
    let groups = policy.groups.clamp(1, max as u32);
    let mut own: Vec<usize> = (0..wheels.len()).filter(|&i| wheels[i].1 >= policy.own_layer_min_bytes).collect();
    let budget = max - groups as usize;
    if own.len() > budget {
        // Keep the largest; ties broken by name so the choice is stable.
        own.sort_by(|&a, &b| wheels[b].1.cmp(&wheels[a].1).then_with(|| wheels[a].0.cmp(&wheels[b].0)));
        own.truncate(budget);
    }
    own.sort_by(|&a, &b| wheels[a].0.cmp(&wheels[b].0));
    let mut plans: Vec<LayerPlan> =
        own.iter().map(|&i| LayerPlan { name: wheels[i].0.clone(), wheels: vec![i] }).collect();
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); groups as usize];
    for (i, (name, _)) in wheels.iter().enumerate() {
        if !own.contains(&i) {
            buckets[bucket_of(name, groups) as usize].push(i);
        }
    }
    for (g, b) in buckets.into_iter().enumerate() {
        if !b.is_empty() {
            plans.push(LayerPlan { name: format!("group-{g}"), wheels: b });
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = vec![
            ("torch".into(), 899_815_990),
            ("nvidia-cudnn-cu12".into(), 706_758_467),
            ("nvidia-cublas-cu12".into(), 594_346_921),
            ("nvidia-cuda-runtime-cu12".into(), 954_765),
            ("triton".into(), 170_433_488),
        ];
        for i in 0..40 {
            v.push((format!("pkg{i}"), 100_000 + i));
        }
        v.sort();
        v
    }

    #[test]
    fn big_wheels_stand_alone_and_the_rest_is_bucketed() {
        let w = set();
        let plans = split(&w, &SplitPolicy::default());
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(&names[..4], &["nvidia-cublas-cu12", "nvidia-cudnn-cu12", "torch", "triton"]);
        assert!(names[4..].iter().all(|n| n.starts_with("group-")));
        assert!(plans.len() <= 4 + 8);
        let total: usize = plans.iter().map(|p| p.wheels.len()).sum();
        assert_eq!(total, w.len());
    }

    #[test]
    fn a_bump_only_moves_its_own_bucket() {
        let w = set();
        let before = split(&w, &SplitPolicy::default());
        let mut w2 = w.clone();
        let i = w2.iter().position(|(n, _)| n == "pkg7").unwrap();
        w2[i].1 += 5; // new version, new size, same name
        let after = split(&w2, &SplitPolicy::default());
        assert_eq!(before, after, "same membership: only the bumped wheel's own bytes change");
        // Adding a package changes exactly one bucket.
        let mut w3 = w.clone();
        w3.push(("newpkg".into(), 1000));
        let after = split(&w3, &SplitPolicy::default());
        let changed: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
    }

    #[test]
    fn budget_demotes_the_smallest_big_wheels() {
        let w = set();
        let plans = split(&w, &SplitPolicy { max_layers: 6, groups: 3, ..SplitPolicy::default() });
        assert!(plans.len() <= 6);
        let own: Vec<&str> = plans.iter().filter(|p| !p.name.starts_with("group-")).map(|p| p.name.as_str()).collect();
        assert_eq!(own, vec!["nvidia-cublas-cu12", "nvidia-cudnn-cu12", "torch"]);
        let plans = split(&w, &SplitPolicy { max_layers: 1, groups: 8, ..SplitPolicy::default() });
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].wheels.len(), w.len());
    }
}
