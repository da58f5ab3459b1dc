//! Ring-buffer records → owned, typed records. The first stage of the
//! pipeline (probe → decode → resolve → state → sinks); a pure function of
//! the bytes, so it can be tested and fuzzed without a kernel.
use cowprof_common::{FaultEvent, FileRecord, TAG_FAULT, TAG_FILE};

/// One record from the ring buffer.
#[derive(Clone, Copy, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "records are decoded one at a time on the stack, never stored"
)]
pub enum Decoded {
    Fault(FaultEvent),
    File(FileRecord),
}

/// Why a record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a ring buffer record of {len} bytes with tag {tag:?} is not one cowprof sends")]
    Unknown { len: usize, tag: Option<u32> },
}

/// Reads a `T` from the front of `bytes`, if it is long enough.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>()).then(|| {
        // SAFETY: `bytes` holds at least size_of::<T>() bytes, read
        // unaligned; T is a repr(C) record of plain integers, for which
        // every bit pattern is valid.
        unsafe { bytes.as_ptr().cast::<T>().read_unaligned() }
    })
}

/// Decodes one record by its leading tag.
///
/// # Errors
/// When the tag is unknown or the record too short for its tag.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let tag = read::<u32>(bytes);
    let decoded = match tag {
        Some(TAG_FAULT) => read::<FaultEvent>(bytes).map(Decoded::Fault),
        Some(TAG_FILE) => read::<FileRecord>(bytes).map(Decoded::File),
        _ => None,
    };
    decoded.ok_or(DecodeError::Unknown {
        len: bytes.len(),
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(value: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain repr(C) value.
        unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast(), size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn faults_and_files_decode_by_tag() {
        let event = FaultEvent {
            tag: TAG_FAULT,
            pid: 7,
            addr: 0x1000,
            ..FaultEvent::default()
        };
        let Ok(Decoded::Fault(back)) = decode(&bytes_of(&event)) else {
            panic!("a fault")
        };
        assert_eq!((back.pid, back.addr), (7, 0x1000));
        let mut bytes = bytes_of(&event);
        bytes.truncate(40);
        assert_eq!(
            decode(&bytes).unwrap_err(),
            DecodeError::Unknown {
                len: 40,
                tag: Some(TAG_FAULT)
            },
            "a short fault record is rejected"
        );
        assert!(decode(&[]).is_err());
        assert!(decode(&[9, 0, 0, 0, 1, 2]).is_err());
    }
}
