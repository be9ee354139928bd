//! Container ids (64 hex digits from /dev/urandom) and names (given ones
//! checked as Docker checks them; made-up ones as `adjective_name`).

use std::io::Read;

use crate::error::ApiError;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b
}

/// A new id; never all digits, so it cannot be taken for a number.
pub fn new_id() -> String {
    loop {
        let id: String = random_bytes::<32>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !id[..12].bytes().all(|c| c.is_ascii_digit()) {
            return id;
        }
    }
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, a leading `/` allowed.
pub fn validate(name: &str) -> Result<String, ApiError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let ok = n.len() >= 2
        && n.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        return Err(ApiError::InvalidParameter(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

const LEFT: &[&str] = &[
    "admiring",
    "agitated",
    "amazing",
    "blissful",
    "bold",
    "brave",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "cranky",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "festive",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "modest",
    "nifty",
    "nostalgic",
    "optimistic",
    "peaceful",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "silly",
    "stoic",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
];

const RIGHT: &[&str] = &[
    "agnesi",
    "allen",
    "babbage",
    "bardeen",
    "bohr",
    "borg",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "feynman",
    "galois",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "maxwell",
    "meitner",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "volhard",
    "wozniak",
    "yonath",
];

/// A made-up name; `taken` says which are in use.
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let r = random_bytes::<4>();
        let mut name = format!(
            "{}_{}",
            LEFT[r[0] as usize % LEFT.len()],
            RIGHT[r[1] as usize % RIGHT.len()]
        );
        if attempt > 10 {
            name.push_str(&(r[2] % 10).to_string());
        }
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop only ends by returning")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, new_id());
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate("/web-1").unwrap(), "web-1");
        assert_eq!(validate("a.b_c").unwrap(), "a.b_c");
        for bad in ["", "a", "-x", "a b", "x/y", "é1"] {
            let e = validate(bad).unwrap_err().to_string();
            assert!(e.contains("Invalid container name"), "{bad}: {e}");
        }
    }

    #[test]
    fn generated_names_avoid_taken_ones() {
        let n = generate(|_| false);
        assert!(n.contains('_'));
        let taken = n.clone();
        for _ in 0..20 {
            assert_ne!(generate(|x| x == taken), taken);
        }
    }
}
