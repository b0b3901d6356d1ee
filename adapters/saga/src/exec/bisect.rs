//! Isolating the items Moodle refuses in a batch, for every batched call (create accounts,
//! enrol, unenrol or suspend).
//!
//! Moodle refuses a whole batch for one bad item and does not say which. The batch is split in
//! halves, depth first and in order, until each refusal is down to one item, which is handed to
//! `isolate` (it is parked alone; the rest go through). A refusal that concerns every item, or
//! an outcome that is unknown, stops the bisection with what is established so far: the next
//! look-up resolves the rest. For `n` items with `k` refused ones it makes at most about
//! `2·k·log2(n) + 1` calls, and exactly one when nothing is refused.

use std::future::Future;

/// Why a call on part of a batch did not go through, as the caller judges Moodle's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused<E, S> {
    /// The refusal may come from one item of the part: split it.
    Item(E),
    /// It concerns every item, or its outcome is unknown: stop.
    Stop(S),
}

/// A part of the batch that is settled, in the order the calls were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled<'a, T, R, X> {
    /// Moodle accepted these items with this answer.
    Accepted(&'a [T], R),
    /// Moodle refused this item alone; what `isolate` made of it.
    Isolated(&'a T, X),
}

/// What a bisection established, and what stopped it (if anything did).
#[derive(Debug)]
pub(crate) struct Bisected<'a, T, R, X, S> {
    pub settled: Vec<Settled<'a, T, R, X>>,
    pub stopped: Option<S>,
}

/// Sends `items` with `call`, splitting every part refused by [`Refused::Item`] until the refused
/// items are alone, and settles each of those with `isolate` (which may stop it too).
pub(crate) async fn bisect<'a, T, R, X, E, S, C, CF, I, IF>(
    items: &'a [T],
    mut call: C,
    mut isolate: I,
) -> Bisected<'a, T, R, X, S>
where
    C: FnMut(&'a [T]) -> CF,
    CF: Future<Output = Result<R, Refused<E, S>>>,
    I: FnMut(&'a T, E) -> IF,
    IF: Future<Output = Result<X, S>>,
{
    let mut done = Bisected {
        settled: Vec::new(),
        stopped: None,
    };
    let mut stack: Vec<&'a [T]> = vec![items];
    while let Some(part) = stack.pop() {
        if part.is_empty() {
            continue;
        }
        match call(part).await {
            Ok(answer) => done.settled.push(Settled::Accepted(part, answer)),
            Err(Refused::Item(e)) => match part {
                [one] => match isolate(one, e).await {
                    Ok(x) => done.settled.push(Settled::Isolated(one, x)),
                    Err(s) => {
                        done.stopped = Some(s);
                        return done;
                    }
                },
                _ => {
                    let (a, b) = part.split_at(part.len() / 2);
                    // Depth first, in order: `a` runs before `b`.
                    stack.push(b);
                    stack.push(a);
                }
            },
            Err(Refused::Stop(s)) => {
                done.stopped = Some(s);
                return done;
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::ready;

    use super::*;

    /// A Moodle that refuses any part holding one of `bad`, and stops at `stop`.
    struct Fake {
        bad: Vec<u32>,
        stop: Option<u32>,
        calls: RefCell<Vec<Vec<u32>>>,
    }

    impl Fake {
        fn new(bad: &[u32]) -> Fake {
            Fake {
                bad: bad.to_vec(),
                stop: None,
                calls: RefCell::new(Vec::new()),
            }
        }

        fn run<'a>(&self, items: &'a [u32]) -> Bisected<'a, u32, usize, String, &'static str> {
            futures::executor::block_on(bisect(
                items,
                |part: &'a [u32]| {
                    self.calls.borrow_mut().push(part.to_vec());
                    ready(if self.stop.is_some_and(|s| part.contains(&s)) {
                        Err(Refused::Stop("timeout"))
                    } else if part.iter().any(|i| self.bad.contains(i)) {
                        Err(Refused::Item("invalidparameter"))
                    } else {
                        Ok(part.len())
                    })
                },
                |item: &'a u32, e: &'static str| ready(Ok(format!("{item}: {e}"))),
            ))
        }

        fn calls(&self) -> usize {
            self.calls.borrow().len()
        }
    }

    fn isolated<'a>(b: &Bisected<'a, u32, usize, String, &'static str>) -> Vec<u32> {
        b.settled
            .iter()
            .filter_map(|s| match s {
                Settled::Isolated(i, _) => Some(**i),
                Settled::Accepted(..) => None,
            })
            .collect()
    }

    fn accepted<'a>(b: &Bisected<'a, u32, usize, String, &'static str>) -> Vec<u32> {
        b.settled
            .iter()
            .flat_map(|s| match s {
                Settled::Accepted(part, n) => {
                    assert_eq!(part.len(), *n);
                    part.to_vec()
                }
                Settled::Isolated(..) => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_batch_nobody_refuses_is_one_call() {
        let items: Vec<u32> = (0..100).collect();
        let fake = Fake::new(&[]);
        let b = fake.run(&items);
        assert_eq!(fake.calls(), 1);
        assert_eq!(accepted(&b), items);
        assert!(b.stopped.is_none());
    }

    #[test]
    fn one_refused_item_is_isolated_and_the_rest_accepted_in_order() {
        // Given 8 items of which item 5 is refused,
        let items: Vec<u32> = (0..8).collect();
        let fake = Fake::new(&[5]);
        let b = fake.run(&items);
        // then 5 alone is isolated, the other 7 accepted in order,
        assert_eq!(isolated(&b), vec![5]);
        assert_eq!(accepted(&b), vec![0, 1, 2, 3, 4, 6, 7]);
        assert_eq!(b.settled.last(), Some(&Settled::Accepted(&items[6..8], 2)));
        assert!(matches!(&b.settled[2], Settled::Isolated(5, x) if x == "5: invalidparameter"));
        // in 1 + 2·log2(8) = 7 calls: [0..8], [0..4], [4..8], [4..6], [4], [5], [6..8].
        assert_eq!(fake.calls(), 7);
        assert_eq!(fake.calls.borrow()[3], vec![4, 5]);
    }

    #[test]
    fn calls_grow_with_the_refused_items_not_the_batch() {
        // Given n items with k refused ones, then each refused item is isolated and the calls
        // stay within 1 + 2·k·ceil(log2 n).
        for (n, bad) in [
            (1u32, vec![0u32]),
            (2, vec![1]),
            (7, vec![0, 6]),
            (100, vec![3]),
            (100, vec![10, 11, 90]),
            (50, (0..50).collect()),
        ] {
            let items: Vec<u32> = (0..n).collect();
            let fake = Fake::new(&bad);
            let b = fake.run(&items);
            assert_eq!(isolated(&b), bad, "n {n}");
            let good: Vec<u32> = items.iter().copied().filter(|i| !bad.contains(i)).collect();
            assert_eq!(accepted(&b), good, "n {n}");
            let depth = u32::BITS - (n - 1).leading_zeros();
            let bound = 1 + 2 * bad.len() * depth as usize;
            assert!(
                fake.calls() <= bound,
                "n {n}: {} calls > {bound}",
                fake.calls()
            );
            assert!(b.stopped.is_none());
        }
        // Every item refused: each one is called alone once, 2n - 1 calls in all.
        let items: Vec<u32> = (0..16).collect();
        let fake = Fake::new(&items);
        fake.run(&items);
        assert_eq!(fake.calls(), 31);
    }

    #[test]
    fn an_unknown_outcome_stops_with_what_is_established() {
        // Given item 6 times out (unknown outcome) while item 1 is refused,
        let items: Vec<u32> = (0..8).collect();
        let mut fake = Fake::new(&[1]);
        fake.stop = Some(6);
        let b = fake.run(&items);
        // then the first call already stops it: nothing is split or settled.
        assert_eq!(b.stopped, Some("timeout"));
        assert!(b.settled.is_empty());
        assert_eq!(fake.calls(), 1);

        // Given the timeout only in the second half, the first half is settled first.
        let items: Vec<u32> = (0..8).collect();
        let mut fake = Fake::new(&[1]);
        fake.stop = Some(6);
        fake.bad.push(6);
        let b = futures::executor::block_on(bisect(
            &items,
            |part: &[u32]| {
                fake.calls.borrow_mut().push(part.to_vec());
                ready(if part == [6u32] || part == [6, 7] {
                    Err(Refused::Stop("timeout"))
                } else if part.iter().any(|i| fake.bad.contains(i)) {
                    Err(Refused::Item("invalidparameter"))
                } else {
                    Ok(part.len())
                })
            },
            |item: &u32, _| ready(Ok::<u32, &str>(*item)),
        ));
        assert_eq!(b.stopped, Some("timeout"));
        let settled: Vec<String> = b.settled.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(
            settled,
            vec![
                "Accepted([0], 1)",
                "Isolated(1, 1)",
                "Accepted([2, 3], 2)",
                "Accepted([4, 5], 2)"
            ]
        );
    }

    #[test]
    fn isolate_may_stop_it() {
        let items: Vec<u32> = (0..4).collect();
        let calls = RefCell::new(0);
        let b = futures::executor::block_on(bisect(
            &items,
            |part: &[u32]| {
                *calls.borrow_mut() += 1;
                ready(if part.contains(&0) {
                    Err(Refused::<_, &str>::Item(()))
                } else {
                    Ok(())
                })
            },
            |_: &u32, ()| ready(Err::<(), _>("look-up failed")),
        ));
        // [0..4], [0..2], [0] → isolate stops: [1] and [2..4] are never called.
        assert_eq!(*calls.borrow(), 3);
        assert_eq!(b.stopped, Some("look-up failed"));
        assert!(b.settled.is_empty());
    }
}
