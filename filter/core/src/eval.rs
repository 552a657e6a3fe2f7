//! Detection-quality metrics for `tollgate eval`: AUC, F1 and the true-positive
//! rate at a fixed false-positive rate, from (score, is_positive) pairs.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalMetrics {
    pub positives: usize,
    pub negatives: usize,
    /// Area under the ROC curve (ties count half).
    pub auc: f64,
    /// F1, TPR and FPR when flagging scores >= `threshold`.
    pub f1: f64,
    pub tpr_at_threshold: f64,
    pub fpr_at_threshold: f64,
    pub threshold: f32,
    /// TPR at the strictest threshold whose FPR is <= 1% / 0.1%.
    pub tpr_at_fpr_1: f64,
    pub tpr_at_fpr_01: f64,
}

/// AUC by the rank-sum (Mann-Whitney) statistic, ties averaged.
pub fn auc(scores: &[(f32, bool)]) -> f64 {
    let mut s: Vec<(f32, bool)> = scores.to_vec();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut pos, mut neg) = (0.0f64, 0usize, 0usize);
    let mut i = 0;
    while i < s.len() {
        let mut j = i;
        let here = s.get(i).map_or(0.0, |x| x.0);
        while s.get(j).is_some_and(|x| x.0.total_cmp(&here).is_eq()) {
            j += 1;
        }
        // ranks i+1 ..= j share their average
        let avg = (i + 1 + j) as f64 / 2.0;
        for x in s.get(i..j).unwrap_or_default() {
            if x.1 {
                rank_sum += avg;
                pos += 1;
            } else {
                neg += 1;
            }
        }
        i = j;
    }
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

/// TPR at the lowest threshold whose FPR does not exceed `max_fpr`
/// (items are flagged when their score is strictly above the threshold).
pub fn tpr_at_fpr(scores: &[(f32, bool)], max_fpr: f64) -> f64 {
    let mut neg: Vec<f32> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let pos: Vec<f32> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    if neg.is_empty() || pos.is_empty() {
        return f64::NAN;
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * neg.len() as f64).floor() as usize;
    // Threshold = the (allowed+1)-th highest negative score: at most `allowed`
    // negatives lie strictly above it.
    let threshold = neg.get(allowed).copied().unwrap_or(f32::NEG_INFINITY);
    pos.iter().filter(|&&p| p > threshold).count() as f64 / pos.len() as f64
}

pub fn f1_at(scores: &[(f32, bool)], threshold: f32) -> f64 {
    let tp = scores.iter().filter(|s| s.1 && s.0 >= threshold).count() as f64;
    let fp = scores.iter().filter(|s| !s.1 && s.0 >= threshold).count() as f64;
    let fn_ = scores.iter().filter(|s| s.1 && s.0 < threshold).count() as f64;
    if tp == 0.0 {
        return 0.0;
    }
    2.0 * tp / (2.0 * tp + fp + fn_)
}

/// Share of positives (`positive`) or negatives scoring >= `threshold`.
pub fn rate_at(scores: &[(f32, bool)], threshold: f32, positive: bool) -> f64 {
    let n = scores.iter().filter(|s| s.1 == positive).count();
    if n == 0 {
        return f64::NAN;
    }
    let hit = scores
        .iter()
        .filter(|s| s.1 == positive && s.0 >= threshold)
        .count();
    hit as f64 / n as f64
}

pub fn metrics(scores: &[(f32, bool)], threshold: f32) -> EvalMetrics {
    EvalMetrics {
        positives: scores.iter().filter(|s| s.1).count(),
        negatives: scores.iter().filter(|s| !s.1).count(),
        auc: auc(scores),
        f1: f1_at(scores, threshold),
        tpr_at_threshold: rate_at(scores, threshold, true),
        fpr_at_threshold: rate_at(scores, threshold, false),
        threshold,
        tpr_at_fpr_1: tpr_at_fpr(scores, 0.01),
        tpr_at_fpr_01: tpr_at_fpr(scores, 0.001),
    }
}

/// A labelled or predicted span: type name and UTF-8 byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

/// Span counts of one type: strict (same type, same bytes) and overlap
/// (same type, any shared byte; one gold span matches one prediction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanCounts {
    pub gold: usize,
    pub predicted: usize,
    pub strict_tp: usize,
    pub overlap_tp: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

impl SpanCounts {
    pub fn precision(&self, strict: bool) -> f64 {
        ratio(self.tp(strict), self.predicted)
    }
    pub fn recall(&self, strict: bool) -> f64 {
        ratio(self.tp(strict), self.gold)
    }
    pub fn f1(&self, strict: bool) -> f64 {
        let (p, r) = (self.precision(strict), self.recall(strict));
        if p + r == 0.0 || p.is_nan() || r.is_nan() {
            return if self.gold == 0 && self.predicted == 0 {
                f64::NAN
            } else {
                0.0
            };
        }
        2.0 * p * r / (p + r)
    }
    fn tp(&self, strict: bool) -> usize {
        if strict {
            self.strict_tp
        } else {
            self.overlap_tp
        }
    }
}

/// Per-type counts over a corpus, plus the hard negatives (texts with no gold span).
#[derive(Debug, Clone, Default)]
pub struct PiiReport {
    /// Sorted by type name.
    pub per_type: std::collections::BTreeMap<String, SpanCounts>,
    pub texts: usize,
    /// Texts without gold spans, and those of them where anything was predicted.
    pub negative_texts: usize,
    pub negative_texts_hit: usize,
}

impl PiiReport {
    /// Add one text's gold and predicted spans.
    pub fn add(&mut self, gold: &[Span], predicted: &[Span]) {
        self.texts += 1;
        if gold.is_empty() {
            self.negative_texts += 1;
            if !predicted.is_empty() {
                self.negative_texts_hit += 1;
            }
        }
        for g in gold {
            self.per_type.entry(g.kind.clone()).or_default().gold += 1;
        }
        let mut used = vec![false; gold.len()];
        for p in predicted {
            let c = self.per_type.entry(p.kind.clone()).or_default();
            c.predicted += 1;
            if gold.iter().any(|g| g == p) {
                c.strict_tp += 1;
            }
            let hit = gold.iter().enumerate().find(|(i, g)| {
                g.kind == p.kind
                    && g.start < p.end
                    && p.start < g.end
                    && !used.get(*i).copied().unwrap_or(true)
            });
            if let Some((i, _)) = hit {
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
                c.overlap_tp += 1;
            }
        }
    }

    /// Share of negative texts with any prediction.
    pub fn negative_fp_rate(&self) -> f64 {
        ratio(self.negative_texts_hit, self.negative_texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(kind: &str, start: usize, end: usize) -> Span {
        Span {
            kind: kind.into(),
            start,
            end,
        }
    }

    #[test]
    fn pii_report_counts_strict_and_overlap() {
        let mut r = PiiReport::default();
        r.add(
            &[sp("EMAIL", 0, 10), sp("PERSON", 20, 30)],
            &[
                sp("EMAIL", 0, 10),
                sp("PERSON", 20, 25),
                sp("PHONE", 40, 50),
            ],
        );
        r.add(&[], &[]);
        r.add(&[], &[sp("PHONE", 1, 5)]);
        let e = r.per_type["EMAIL"];
        assert_eq!(
            (e.gold, e.predicted, e.strict_tp, e.overlap_tp),
            (1, 1, 1, 1)
        );
        let p = r.per_type["PERSON"];
        assert_eq!((p.strict_tp, p.overlap_tp), (0, 1));
        assert_eq!(p.recall(true), 0.0);
        assert_eq!(p.recall(false), 1.0);
        let ph = r.per_type["PHONE"];
        assert_eq!((ph.gold, ph.predicted), (0, 2));
        assert_eq!(ph.precision(false), 0.0);
        assert!(ph.recall(false).is_nan());
        assert_eq!((r.negative_texts, r.negative_texts_hit), (2, 1));
        assert_eq!(r.negative_fp_rate(), 0.5);
        // One gold span matches one prediction only.
        let mut r = PiiReport::default();
        r.add(
            &[sp("PERSON", 0, 10)],
            &[sp("PERSON", 0, 4), sp("PERSON", 5, 10)],
        );
        assert_eq!(r.per_type["PERSON"].overlap_tp, 1);
    }

    #[test]
    fn perfect_and_inverted() {
        let s = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!(auc(&s), 1.0);
        assert_eq!(tpr_at_fpr(&s, 0.01), 1.0);
        assert_eq!(f1_at(&s, 0.5), 1.0);
        let inv = [(0.1, true), (0.9, false)];
        assert_eq!(auc(&inv), 0.0);
        assert_eq!(tpr_at_fpr(&inv, 0.01), 0.0);
    }

    #[test]
    fn ties_count_half() {
        let s = [(0.5, true), (0.5, false)];
        assert_eq!(auc(&s), 0.5);
        // All-zero rule scores: nothing can be flagged strictly above a tie.
        let z = [(0.0, true), (0.0, false), (0.0, false)];
        assert_eq!(tpr_at_fpr(&z, 0.01), 0.0);
    }

    #[test]
    fn tpr_at_fpr_allows_the_budget() {
        // 100 negatives at 0.0..0.99, 1 of them (0.99) may be above the threshold at 1%.
        let mut s: Vec<(f32, bool)> = (0..100).map(|i| (i as f32 / 100.0, false)).collect();
        s.push((0.985, true));
        s.push((0.995, true));
        // threshold = second-highest negative (0.98): both positives are above.
        assert_eq!(tpr_at_fpr(&s, 0.01), 1.0);
        // 0.1% of 100 = 0 negatives: threshold 0.99: only 0.995 is above.
        assert_eq!(tpr_at_fpr(&s, 0.001), 0.5);
    }
}
