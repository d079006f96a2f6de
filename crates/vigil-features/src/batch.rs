//! Micro-batches as Arrow record batches. A tabular batch has an `event_id` column and a `features`
//! column of type `FixedSizeList<Float32, D>` whose values buffer is the row-major `[N, D]` tensor ONNX
//! Runtime takes, handed over without a copy ([`dense_view`]). A text batch has `indices`
//! (`FixedSizeList<Int64, L>`) and `values` (`FixedSizeList<Float32, L>`), where `L` is the longest
//! row's used length, not the spec's padded one: rows are kept at their used lengths and packed once,
//! so the model runs on `[N, L]` and no padding every row shares is written. The same batches feed
//! drift windows and the learner's rehearsal buffer, and can be written as Arrow IPC.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{ArrowError, DataType, Field, Schema};

/// Column names.
pub const EVENT_ID: &str = "event_id";
/// Dense features column.
pub const FEATURES: &str = "features";
/// Text indices column.
pub const INDICES: &str = "indices";
/// Text values column.
pub const VALUES: &str = "values";

/// Room reserved per event id (the builder grows past it when ids are longer).
const ID_BYTES: usize = 24;

/// Accumulates rows, then builds a batch: dense rows are written where the tensor is (no copy);
/// text rows are kept one after another at their used lengths ([`Ragged`]) and packed once, at the
/// end, to `[rows, longest]`.
#[derive(Debug)]
pub struct BatchBuilder {
    width: usize,
    /// The rows' event ids, in one buffer (a `String` each cost an allocation per row).
    ids: StringBuilder,
    /// Dense rows, row-major: the `[rows, width]` tensor itself.
    floats: Vec<f32>,
    /// Text rows (`None` for a dense batch).
    text: Option<Ragged>,
}

/// A text batch's rows before packing: each row's used slots, one row after another, and where a
/// row's fill writes. A builder takes these buffers from the last text batch finished on its thread
/// ([`SPARE`]) and leaves them there: written afresh each micro-batch, they cost page faults and
/// zeroing (a padded `[512, 256]` batch was 1.5 MB, mostly padding, then moved to cut it).
#[derive(Debug, Default)]
struct Ragged {
    /// The padding index (0, or an encoder's pad token id); padding values are 0.
    pad: i64,
    /// The longest row's used length.
    longest: usize,
    lens: Vec<usize>,
    ints: Vec<i64>,
    floats: Vec<f32>,
    /// One row's slots (the builder's width), reused row after row.
    scratch: (Vec<i64>, Vec<f32>),
}

thread_local! {
    static SPARE: std::cell::Cell<Option<Ragged>> = const { std::cell::Cell::new(None) };
}

impl Ragged {
    /// Empty rows of `width` slots, in this thread's spare buffers when there are some.
    fn take(width: usize, pad: i64) -> Ragged {
        let mut r = SPARE.with(std::cell::Cell::take).unwrap_or_default();
        r.pad = pad;
        r.longest = 0;
        r.lens.clear();
        r.ints.clear();
        r.floats.clear();
        r.scratch.0.resize(width, 0);
        r.scratch.1.resize(width, 0.0);
        r
    }

    /// The rows as `[rows, len]` index and value tensors, `len` the longest row's used length (at
    /// least 1), shorter rows padded; the buffers go back to this thread's spare.
    fn pack(self) -> (Vec<i64>, Vec<f32>, usize) {
        let len = self.longest.max(1);
        let rows = self.lens.len();
        let (mut ints, mut floats) = (Vec::with_capacity(rows * len), Vec::with_capacity(rows * len));
        let mut at = 0;
        for &used in &self.lens {
            ints.extend_from_slice(&self.ints[at..at + used]);
            ints.resize(ints.len() + len - used, self.pad);
            floats.extend_from_slice(&self.floats[at..at + used]);
            floats.resize(floats.len() + len - used, 0.0);
            at += used;
        }
        SPARE.with(|s| s.set(Some(self)));
        (ints, floats, len)
    }
}

impl BatchBuilder {
    /// A builder for dense rows of `width` features.
    pub fn dense(width: usize, capacity: usize) -> BatchBuilder {
        BatchBuilder {
            width,
            ids: StringBuilder::with_capacity(capacity, capacity * ID_BYTES),
            floats: Vec::with_capacity(capacity * width),
            text: None,
        }
    }

    /// A builder for text rows of `len` (index, value) pairs, padded with index 0.
    pub fn text(len: usize, capacity: usize) -> BatchBuilder {
        BatchBuilder::text_padded(len, capacity, 0)
    }

    /// A builder for text rows of `len` (index, value) pairs, padded with index `pad` (an encoder's
    /// pad token id) and value 0.
    pub fn text_padded(len: usize, capacity: usize, pad: i64) -> BatchBuilder {
        BatchBuilder {
            width: len,
            ids: StringBuilder::with_capacity(capacity, capacity * ID_BYTES),
            floats: Vec::new(),
            text: Some(Ragged::take(len, pad)),
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a dense row written by `fill`; a failing `fill` adds nothing.
    pub fn push_dense<E>(&mut self, id: &str, fill: impl FnOnce(&mut [f32]) -> Result<(), E>) -> Result<(), E> {
        let start = self.floats.len();
        self.floats.resize(start + self.width, 0.0);
        match fill(&mut self.floats[start..]) {
            Ok(()) => {
                self.ids.append_value(id);
                Ok(())
            }
            Err(e) => {
                self.floats.truncate(start);
                Err(e)
            }
        }
    }

    /// Adds a text row written by `fill` into slots of the builder's width, which returns how many
    /// leading slots it used (what it wrote after them is not kept: the batch pads rows itself); a
    /// failing `fill` adds nothing. (A builder made for dense rows is for text rows from then on.)
    pub fn push_text<E>(
        &mut self,
        id: &str,
        fill: impl FnOnce(&mut [i64], &mut [f32]) -> Result<usize, E>,
    ) -> Result<(), E> {
        let width = self.width;
        let r = self.text.get_or_insert_with(|| Ragged::take(width, 0));
        let (ints, floats) = &mut r.scratch;
        let used = fill(ints, floats)?.min(self.width);
        r.ints.extend_from_slice(&ints[..used]);
        r.floats.extend_from_slice(&floats[..used]);
        r.lens.push(used);
        r.longest = r.longest.max(used);
        self.ids.append_value(id);
        Ok(())
    }

    /// The record batch (a text batch cut to its longest row, [`BatchBuilder::push_text`]).
    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let ids: ArrayRef = Arc::new(self.ids.finish());
        let float_item = Arc::new(Field::new("item", DataType::Float32, false));
        let width = |w: usize| i32::try_from(w).map_err(|_| ArrowError::InvalidArgumentError("row too wide".into()));
        if let Some(rows) = self.text {
            let (ints, floats, len) = rows.pack();
            let width = width(len)?;
            let ints = Int64Array::new(ScalarBuffer::from(ints), None);
            let floats = Float32Array::new(ScalarBuffer::from(floats), None);
            let int_item = Arc::new(Field::new("item", DataType::Int64, false));
            let indices = FixedSizeListArray::try_new(int_item.clone(), width, Arc::new(ints), None)?;
            let values = FixedSizeListArray::try_new(float_item.clone(), width, Arc::new(floats), None)?;
            let schema = Schema::new(vec![
                Field::new(EVENT_ID, DataType::Utf8, false),
                Field::new(INDICES, DataType::FixedSizeList(int_item, width), false),
                Field::new(VALUES, DataType::FixedSizeList(float_item, width), false),
            ]);
            RecordBatch::try_new(Arc::new(schema), vec![ids, Arc::new(indices), Arc::new(values)])
        } else {
            let width = width(self.width)?;
            let floats = Float32Array::new(ScalarBuffer::from(self.floats), None);
            let features = FixedSizeListArray::try_new(float_item.clone(), width, Arc::new(floats), None)?;
            let schema = Schema::new(vec![
                Field::new(EVENT_ID, DataType::Utf8, false),
                Field::new(FEATURES, DataType::FixedSizeList(float_item, width), false),
            ]);
            RecordBatch::try_new(Arc::new(schema), vec![ids, Arc::new(features)])
        }
    }
}

fn list_values<'a, T: arrow_array::ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    column: &str,
) -> Option<(&'a [T::Native], usize)> {
    let list = batch.column_by_name(column)?.as_any().downcast_ref::<FixedSizeListArray>()?;
    let values = list.values().as_any().downcast_ref::<arrow_array::PrimitiveArray<T>>()?;
    let width = list.value_length() as usize;
    // The list's offset selects rows of a sliced batch.
    let start = list.offset() * width;
    Some((&values.values()[start..start + list.len() * width], width))
}

/// The `[rows, width]` row-major tensor of a dense batch, borrowed from its values buffer.
pub fn dense_view(batch: &RecordBatch) -> Option<(&[f32], usize, usize)> {
    let (v, width) = list_values::<arrow_array::types::Float32Type>(batch, FEATURES)?;
    Some((v, batch.num_rows(), width))
}

/// The `[rows, len]` index and value tensors of a text batch, borrowed.
pub fn text_view(batch: &RecordBatch) -> Option<(&[i64], &[f32], usize, usize)> {
    let (i, len) = list_values::<arrow_array::types::Int64Type>(batch, INDICES)?;
    let (v, _) = list_values::<arrow_array::types::Float32Type>(batch, VALUES)?;
    Some((i, v, batch.num_rows(), len))
}

/// The event ids of a batch.
pub fn event_ids(batch: &RecordBatch) -> Option<&StringArray> {
    batch.column_by_name(EVENT_ID)?.as_any().downcast_ref::<StringArray>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_batches_hand_out_their_buffer_and_failed_rows_leave_nothing() {
        let mut b = BatchBuilder::dense(3, 4);
        b.push_dense("a", |r| {
            r.copy_from_slice(&[1.0, 2.0, 3.0]);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(
            b.push_dense("bad", |r| {
                r[0] = 9.0;
                Err(())
            })
            .is_err()
        );
        b.push_dense("b", |r| {
            r.copy_from_slice(&[4.0, 5.0, 6.0]);
            Ok::<(), ()>(())
        })
        .unwrap();
        let ptr_before = b.floats.as_ptr();
        let batch = b.finish().unwrap();
        let (values, rows, width) = dense_view(&batch).unwrap();
        assert_eq!((rows, width), (2, 3));
        assert_eq!(values, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(values.as_ptr(), ptr_before, "no copy between the rows and the tensor");
        assert_eq!(event_ids(&batch).unwrap().value(1), "b");
        let sliced = batch.slice(1, 1);
        assert_eq!(dense_view(&sliced).unwrap().0, &[4.0, 5.0, 6.0]);
    }

    #[test]
    fn text_batches_keep_indices_and_values_aligned() {
        let mut b = BatchBuilder::text(2, 2);
        b.push_text("t", |i, v| {
            i.copy_from_slice(&[5, 0]);
            v.copy_from_slice(&[0.5, 0.0]);
            Ok::<usize, ()>(2)
        })
        .unwrap();
        let batch = b.finish().unwrap();
        let (i, v, rows, len) = text_view(&batch).unwrap();
        assert_eq!((i, v, rows, len), (&[5i64, 0][..], &[0.5f32, 0.0][..], 1, 2));
    }

    #[test]
    fn text_batches_are_cut_to_their_longest_row() {
        let mut b = BatchBuilder::text(5, 3);
        let rows: [&[i64]; 3] = [&[7], &[1, 2, 3], &[4, 5]];
        for (k, row) in rows.iter().enumerate() {
            b.push_text(&format!("r{k}"), |i, v| {
                i[..row.len()].copy_from_slice(row);
                v[..row.len()].iter_mut().for_each(|x| *x = k as f32 + 1.0);
                Ok::<usize, ()>(row.len())
            })
            .unwrap();
        }
        assert!(b.push_text("bad", |_, _| Err(())).is_err());
        let batch = b.finish().unwrap();
        let (i, v, rows, len) = text_view(&batch).unwrap();
        assert_eq!((rows, len), (3, 3), "three rows, cut from 5 to the longest (3)");
        assert_eq!(i, &[7, 0, 0, 1, 2, 3, 4, 5, 0]);
        assert_eq!(v, &[1.0, 0.0, 0.0, 2.0, 2.0, 2.0, 3.0, 3.0, 0.0]);
        let mut padding_only = BatchBuilder::text(4, 1);
        padding_only.push_text("e", |_, _| Ok::<usize, ()>(0)).unwrap();
        let batch = padding_only.finish().unwrap();
        let (i, v, rows, len) = text_view(&batch).unwrap();
        assert_eq!((i, v, rows, len), (&[0i64][..], &[0f32][..], 1, 1), "a row of padding only keeps one slot");
    }

    /// An encoder's batch pads with its pad token id (values 0), whatever its fill wrote past the
    /// slots it used; the buffers a finished batch leaves behind start the next one empty.
    #[test]
    fn text_batches_pad_with_their_pad_id_and_start_empty() {
        for _ in 0..2 {
            let mut b = BatchBuilder::text_padded(4, 2, 1);
            for row in [&[101i64, 7, 102][..], &[101, 102]] {
                b.push_text("t", |i, v| {
                    i.fill(-5);
                    v.fill(-5.0);
                    i[..row.len()].copy_from_slice(row);
                    v[..row.len()].fill(1.0);
                    Ok::<usize, ()>(row.len())
                })
                .unwrap();
            }
            let batch = b.finish().unwrap();
            let (i, v, rows, len) = text_view(&batch).unwrap();
            assert_eq!((rows, len), (2, 3));
            assert_eq!(i, &[101, 7, 102, 101, 102, 1]);
            assert_eq!(v, &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
        }
    }
}
