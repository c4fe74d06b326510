//! The best fixed mix in hindsight: the convex combination of the workers' inferences (weights
//! ≥ 0 summing to 1, fixed over the run) with the lowest MSE over the scored epochs — the limit
//! any weighting of these workers could reach without foresight of each epoch. Solved by
//! accelerated projected gradient descent (FISTA) on the normal equations, deterministic.

/// Iterations of the solver (9 workers: a few milliseconds).
const ITERATIONS: usize = 20_000;

/// `(weights, mse)` of the best convex mix of the columns of `rows` (each row: the workers'
/// inferences of one epoch, then the truth); `None` without rows or workers.
pub fn best_fixed_mix(rows: &[(Vec<f64>, f64)]) -> Option<(Vec<f64>, f64)> {
    let n = rows.first()?.0.len();
    if n == 0 {
        return None;
    }
    // centre and scale: prices near 1.1 with tiny differences make the raw Gram matrix
    // ill-conditioned; a convex mix of shifted values is the shifted mix (weights sum to 1)
    let shift = rows.iter().map(|(_, y)| y).sum::<f64>() / rows.len() as f64;
    let scale = rows
        .iter()
        .map(|(_, y)| (y - shift).abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut gram = vec![0.0; n * n];
    let mut xy = vec![0.0; n];
    for (x, y) in rows {
        let y = (y - shift) / scale;
        for i in 0..n {
            let xi = (x[i] - shift) / scale;
            xy[i] += xi * y;
            for j in 0..n {
                gram[i * n + j] += xi * (x[j] - shift) / scale;
            }
        }
    }
    // step 1/L with L ≥ the largest eigenvalue (the trace bounds it: G is positive semidefinite)
    let trace: f64 = (0..n).map(|i| gram[i * n + i]).sum();
    if !(trace.is_finite() && trace > 0.0) {
        return None;
    }
    let step = 1.0 / trace;
    let grad = |w: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| (0..n).map(|j| gram[i * n + j] * w[j]).sum::<f64>() - xy[i])
            .collect()
    };
    let mut w = vec![1.0 / n as f64; n];
    let mut z = w.clone();
    let mut t = 1.0f64;
    for _ in 0..ITERATIONS {
        let g = grad(&z);
        let mut next: Vec<f64> = z.iter().zip(&g).map(|(zi, gi)| zi - step * gi).collect();
        project_simplex(&mut next);
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let momentum = (t - 1.0) / t_next;
        z = next
            .iter()
            .zip(&w)
            .map(|(a, b)| a + momentum * (a - b))
            .collect();
        w = next;
        t = t_next;
    }
    let mse = rows
        .iter()
        .map(|(x, y)| {
            let v: f64 = x.iter().zip(&w).map(|(xi, wi)| xi * wi).sum();
            (v - y) * (v - y)
        })
        .sum::<f64>()
        / rows.len() as f64;
    Some((w, mse))
}

/// Euclidean projection onto the probability simplex (Duchi et al. 2008).
fn project_simplex(v: &mut [f64]) {
    let mut u = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let mut sum = 0.0;
    let mut theta = 0.0;
    for (i, ui) in u.iter().enumerate() {
        sum += ui;
        let t = (sum - 1.0) / (i + 1) as f64;
        if ui - t > 0.0 {
            theta = t;
        }
    }
    for x in v.iter_mut() {
        *x = (*x - theta).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_mix_is_found_and_never_worse_than_the_best_worker() {
        // truth = 0.3·a + 0.7·b exactly; c is noise
        let rows: Vec<(Vec<f64>, f64)> = (0..200)
            .map(|i| {
                let x = i as f64;
                let (a, b, c) = ((x * 0.37).sin(), (x * 0.11).cos(), (x * 1.7).sin() * 3.0);
                (vec![a, b, c], 0.3 * a + 0.7 * b)
            })
            .collect();
        let (w, mse) = best_fixed_mix(&rows).unwrap();
        assert!(
            (w[0] - 0.3).abs() < 1e-6 && (w[1] - 0.7).abs() < 1e-6,
            "{w:?}"
        );
        assert!(w[2].abs() < 1e-9 && mse < 1e-12, "{w:?} {mse}");
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // prices: a large common level with small differences
        let rows: Vec<(Vec<f64>, f64)> = (0..300)
            .map(|i| {
                let x = i as f64;
                let y = 1.1 + 0.001 * (x * 0.3).sin();
                (vec![y + 0.0005 * (x * 0.7).cos(), y - 0.0002], y)
            })
            .collect();
        let (w, mse) = best_fixed_mix(&rows).unwrap();
        let single = |k: usize| rows.iter().map(|(x, y)| (x[k] - y).powi(2)).sum::<f64>() / 300.0;
        assert!(mse <= single(0).min(single(1)) * (1.0 + 1e-9), "{w:?}");
        assert!(best_fixed_mix(&[]).is_none());
    }

    #[test]
    fn the_projection_lands_on_the_simplex() {
        let mut v = vec![0.5, 2.0, -1.0];
        project_simplex(&mut v);
        assert_eq!(v, vec![0.0, 1.0, 0.0]);
        let mut v = vec![0.2, 0.2, 0.2];
        project_simplex(&mut v);
        assert!(v.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-15));
    }
}
