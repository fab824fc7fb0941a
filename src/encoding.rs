//! The one base64 implementation (the `base64` crate) with the leniency
//! Strata's inputs need: spec `content_base64` (standard alphabet, padding
//! optional, whitespace ignored) and wheel RECORD hashes (URL-safe, no
//! padding; the standard alphabet is accepted too).

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

pub use base64::DecodeError;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes standard base64; padding optional, whitespace ignored.
pub fn decode(s: &str) -> Result<Vec<u8>, DecodeError> {
    let clean: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    STANDARD.decode(clean)
}

/// Decodes URL-safe base64 (or standard, for writers that use it); padding optional.
pub fn decode_url_safe(s: &str) -> Result<Vec<u8>, DecodeError> {
    URL_SAFE.decode(s).or_else(|e| STANDARD.decode(s).map_err(|_| e))
}

/// Encodes URL-safe base64 without padding (wheel RECORD hashes).
pub fn encode_url_safe(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_where_inputs_need_it() {
        assert_eq!(decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode("aGVs\nbG8").unwrap(), b"hello");
        assert_eq!(decode("").unwrap(), b"");
        assert!(decode("a").is_err() && decode("a$==").is_err());
        let d = [0xfbu8, 0xff];
        assert_eq!(encode_url_safe(&d), "-_8");
        assert_eq!(decode_url_safe("-_8").unwrap(), d);
        assert_eq!(decode_url_safe("+/8=").unwrap(), d);
    }
}
