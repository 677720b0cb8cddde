//! Names for apps created without one, Heroku style: `adjective-noun-1234`.

use rand::seq::SliceRandom;
use rand::Rng;
use wharf_core::name::AppName;

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "clever", "crisp", "dusty", "eager", "fancy", "gentle", "glad",
    "golden", "happy", "hidden", "jolly", "keen", "lively", "lucky", "mellow", "misty", "nimble",
    "polished", "quiet", "rapid", "rustic", "shiny", "silent", "smooth", "steady", "sunny",
    "swift", "tidy", "vast", "warm", "wild",
];

const NOUNS: &[&str] = &[
    "anchor",
    "barge",
    "beacon",
    "buoy",
    "canal",
    "cove",
    "crane",
    "dock",
    "ferry",
    "fjord",
    "harbor",
    "inlet",
    "jetty",
    "keel",
    "lagoon",
    "lighthouse",
    "mooring",
    "oar",
    "pier",
    "quay",
    "raft",
    "reef",
    "sail",
    "shore",
    "skiff",
    "tide",
    "tugboat",
    "wave",
    "wharf",
];

/// A random, valid app name.
pub fn generate() -> AppName {
    let mut rng = rand::thread_rng();
    let name = format!(
        "{}-{}-{:04}",
        ADJECTIVES.choose(&mut rng).copied().unwrap_or("quiet"),
        NOUNS.choose(&mut rng).copied().unwrap_or("harbor"),
        rng.gen_range(0..10_000)
    );
    AppName::parse(&name).expect("generated names are valid app names")
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_names_are_valid() {
        for _ in 0..200 {
            let name = super::generate();
            assert!(name.as_str().len() <= 30, "{name}");
        }
    }
}
