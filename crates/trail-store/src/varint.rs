//! LEB128 varints: the compact integer encoding of sqlite's posting blocks
//! and of the rollup histograms of both backends.

use crate::StoreError;

/// Appends `value` as a varint.
pub fn push(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Calls `each` with every varint of `bytes`, in order; `what` names the
/// data in errors.
pub fn for_each(
    bytes: &[u8],
    what: &str,
    mut each: impl FnMut(u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let (mut value, mut shift) = (0u64, 0u32);
    for &byte in bytes {
        if shift > 56 {
            return Err(StoreError::Corrupt(format!("{what}: varint too long")));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            each(value)?;
            (value, shift) = (0, 0);
        } else {
            shift += 7;
        }
    }
    if shift != 0 {
        return Err(StoreError::Corrupt(format!("{what}: ends inside a varint")));
    }
    Ok(())
}

/// Reads every varint of `bytes`; `what` names the data in errors.
pub fn read_all(bytes: &[u8], what: &str) -> Result<Vec<u64>, StoreError> {
    let mut values = Vec::with_capacity(bytes.len());
    for_each(bytes, what, |value| {
        values.push(value);
        Ok(())
    })?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let values = [0, 1, 127, 128, 300, 1 << 40, u64::MAX >> 8];
        let mut bytes = Vec::new();
        for value in values {
            push(&mut bytes, value);
        }
        assert_eq!(read_all(&bytes, "test").expect("read"), values);
        assert!(read_all(&[0x80], "test").is_err());
    }
}
