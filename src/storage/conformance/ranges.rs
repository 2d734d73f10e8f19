//! Checks of ranged reads (`get_range`): ranges at the start, in the middle
//! and at the end of an object, empty ranges, ranges past the end and on a
//! missing key.

use super::*;

/// `get_range` returns exactly the bytes asked for: at the start, in the
/// middle, at the end, the whole object, and nothing for an empty range
/// (inside the object or at its end); a range that ends past the object's
/// end, or before it starts, is [`StorageError::RangeOutOfBounds`] naming
/// the key and the object's size; a missing key is
/// [`StorageError::NotFound`], for an empty range too.
///
/// # Panics
///
/// On a violation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = steadfast::storage::MemoryStorage::new();
/// steadfast::storage::conformance::get_range_reads_exactly_the_range(&storage).await;
/// # }
/// ```
pub async fn get_range_reads_exactly_the_range<S: CheckpointStorage + ?Sized>(storage: &S) {
    let check = "get_range_reads_exactly_the_range";
    let prefix = "conformance/range/";
    let key = "conformance/range/object";
    let data = pattern(11, 0, 10_007);
    let size = data.len() as u64;
    ok(check, "put", storage.put(key, data.clone().into()).await);
    let ranges = [
        0..1,
        0..100,
        4_000..6_123,
        size - 1..size,
        size - 77..size,
        0..size,
        0..0,
        5_000..5_000,
        size..size,
    ];
    for range in ranges {
        let got = ok(
            check,
            &format!("get_range({key:?}, {range:?})"),
            storage.get_range(key, range.clone()).await,
        );
        let want = &data[range.start as usize..range.end as usize];
        ensure!(
            check,
            got == want,
            "get_range({key:?}, {range:?}) returned {} bytes that differ from the {} bytes \
             of that range",
            got.len(),
            want.len()
        );
    }
    // A range that ends before it starts (`10..5`).
    #[allow(clippy::reversed_empty_ranges)]
    let beyond = [
        size - 1..size + 1,
        size..size + 1,
        size + 10..size + 20,
        0..u64::MAX,
        10..5,
    ];
    for range in beyond {
        match storage.get_range(key, range.clone()).await {
            Err(StorageError::RangeOutOfBounds {
                key: k,
                start,
                end,
                size: reported,
            }) => ensure!(
                check,
                k == key && start == range.start && end == range.end && reported == size,
                "get_range({key:?}, {range:?}) reported key {k:?}, range {start}..{end} and \
                 size {reported}; expected key {key:?}, range {range:?} and size {size}"
            ),
            other => violated(
                check,
                format_args!(
                    "get_range({key:?}, {range:?}) of an object of {size} bytes returned {:?}; \
                     expected RangeOutOfBounds",
                    other.map(|bytes| bytes.len())
                ),
            ),
        }
    }
    let missing = "conformance/range/missing";
    expect_not_found(
        check,
        "get_range",
        missing,
        storage.get_range(missing, 0..1).await,
    );
    expect_not_found(
        check,
        "get_range",
        missing,
        storage.get_range(missing, 0..0).await,
    );
    delete_all(check, storage, prefix).await;
}
