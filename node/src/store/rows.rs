//! The stored form of derived JSON rows (finalized inferences, statement lines): zlib (deflate
//! with an Adler-32 check, so a damaged row is refused rather than read as other JSON) with a
//! preset dictionary of the text they repeat (field names, role names), so a row costs about
//! what its numbers and keys do. The API still reads and writes JSON ([`pack`] on the
//! way in, [`unpack`] on the way out); schema 6 introduced it and migrated older rows
//! ([`super::migrate`]).
//!
//! The dictionary is part of the format: changing it needs a schema version and a migration
//! (a test pins its hash).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::StoreError;

/// What the rows repeat: the field names of a statement line and of a stored inference, the
/// role names. Later bytes are cheaper to refer to, so the most frequent text comes last.
pub const DICTIONARY: &[u8] =
    b"\"outlier_resistant\":{\"bundle\":\"leaf\":{\"index\":\"siblings\":[\
\"finalized\":true,\"height\":\"naive_value\":\"confidence_interval_values\":\
\"one_in_forecaster_values\":{\"one_out_forecaster_values\":{\
\"one_out_inferer_forecaster_values\":{\"forecaster_weights\":{\"forecaster_values\":{\
\"combined_value\":\"one_out_inferer_values\":{\"inferer_weights\":{\"inferer_values\":{\
{\"topic\":\"epoch\":\"height\":\"role\":\"delegator\",\"score\":null,\"ema_score\":null,\
\"weight\":null,\"reward_fraction\":\"payout\":\"0\"},\
{\"topic\":\"epoch\":\"height\":\"role\":\"reputer\",\"score\":\"ema_score\":\"weight\":null,\
\"reward_fraction\":\"payout\":\"},\
{\"topic\":\"epoch\":\"height\":\"role\":\"forecaster\",\"score\":\"ema_score\":\"weight\":null,\
\"reward_fraction\":\"payout\":\"},\
[{\"topic\":\"epoch\":\"height\":\"role\":\"inferer\",\"score\":\"ema_score\":\"weight\":\
\"reward_fraction\":\"payout\":\"";

/// The largest row [`unpack`] gives back: a damaged row cannot make the node allocate more.
pub const MAX_ROW_BYTES: usize = 64 << 20;

thread_local! {
    /// One deflate state per thread (the storage thread packs every row): a new one is some
    /// 270 KB, allocated (with the binary's 128 KiB mmap threshold: mapped and faulted in) and
    /// freed per row otherwise.
    static PACKER: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::default(), true));
}

/// The stored form of `json`.
///
/// # Errors
/// [`StoreError::Corrupt`] if zlib refuses (it does not, for a fresh stream with room to
/// write; the error keeps a failure from looping).
pub fn pack(json: &[u8]) -> Result<Vec<u8>, StoreError> {
    PACKER.with(|c| pack_with(&mut c.borrow_mut(), json))
}

fn pack_with(c: &mut Compress, json: &[u8]) -> Result<Vec<u8>, StoreError> {
    let refused = |e: String| StoreError::Corrupt {
        table: "-",
        reason: format!("cannot pack a row: {e}"),
    };
    c.reset();
    c.set_dictionary(DICTIONARY)
        .map_err(|e| refused(e.to_string()))?;
    let mut out = Vec::with_capacity(json.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(c.total_in()).unwrap_or(json.len());
        out.reserve(json.len() / 4 + 64);
        match c.compress_vec(
            &json[consumed.min(json.len())..],
            &mut out,
            FlushCompress::Finish,
        ) {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) => {}
            Err(e) => return Err(refused(e.to_string())),
        }
    }
}

/// The JSON of a row `table` stored with [`pack`].
///
/// # Errors
/// [`StoreError::Corrupt`] if the bytes do not inflate, or to more than [`MAX_ROW_BYTES`].
pub fn unpack(table: &'static str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { table, reason };
    let mut d = Decompress::new(true);
    let mut out = Vec::with_capacity(bytes.len() * 4 + 64);
    let mut dictionary_given = false;
    loop {
        let consumed = d.total_in() as usize;
        let before = d.total_out();
        let status = match d.decompress_vec(&bytes[consumed..], &mut out, FlushDecompress::Finish) {
            Ok(status) => status,
            // The stream names its dictionary by checksum: only ours is given.
            Err(e) if e.needs_dictionary().is_some() && !dictionary_given => {
                dictionary_given = true;
                d.set_dictionary(DICTIONARY)
                    .map_err(|e| corrupt(format!("not our dictionary: {e}")))?;
                continue;
            }
            Err(e) => return Err(corrupt(format!("does not inflate: {e}"))),
        };
        match status {
            Status::StreamEnd => return Ok(out),
            _ if out.len() > MAX_ROW_BYTES => {
                return Err(corrupt(format!("inflates past {MAX_ROW_BYTES} bytes")));
            }
            _ if d.total_out() == before && out.len() < out.capacity() => {
                return Err(corrupt("the row ends before its stream does".into()));
            }
            _ => out.reserve(out.len().max(4_096)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The dictionary is part of the stored format.
    #[test]
    fn the_dictionary_is_pinned() {
        assert_eq!(
            blake3::hash(DICTIONARY).to_hex().as_str(),
            "2fb650fe78c621e4ae6f12904c9df8b9939ea721de40c3e4906e710d062f14e6"
        );
    }

    #[test]
    fn rows_come_back_byte_for_byte_and_smaller() {
        let line = br#"[{"topic":3,"epoch":1234,"height":1240,"role":"inferer","score":0.004113712775913846,"ema_score":-0.0012063409185302113,"weight":0.7316239541893113,"reward_fraction":0.0103399164187436,"payout":"51699582093718000"}]"#;
        let packed = pack(line).unwrap();
        assert_eq!(unpack("statements", &packed).unwrap(), line.to_vec());
        // The reused deflate state starts afresh: the same bytes again.
        assert_eq!(pack(line).unwrap(), packed);
        assert!(
            packed.len() * 10 < line.len() * 7,
            "{} of {}",
            packed.len(),
            line.len()
        );
        for json in [&b""[..], b"{}", &vec![b'7'; 200_000]] {
            assert_eq!(
                unpack("inferences", &pack(json).unwrap()).unwrap(),
                json.to_vec()
            );
        }
    }

    /// A damaged row is an error naming its table, not a panic or a huge allocation.
    #[test]
    fn damaged_rows_are_refused() {
        let packed = pack(&vec![b'x'; 10_000]).unwrap();
        for bad in [
            &packed[..packed.len() / 2],
            &[0xff; 16][..],
            br#"{"json":"as an old build wrote it"}"#,
        ] {
            match unpack("inferences", bad) {
                Err(StoreError::Corrupt { table, .. }) => assert_eq!(table, "inferences"),
                other => panic!("{other:?}"),
            }
        }
        // A bomb: 100 MB of zeros in a few hundred kilobytes.
        let bomb = pack(&vec![0u8; 100 << 20]).unwrap();
        assert!(matches!(
            unpack("inferences", &bomb),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
