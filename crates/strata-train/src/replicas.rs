//! Data-parallel replicas on one CPU: the batch is split in as many parts as there are
//! replicas, each part goes forward and backward on its own thread with a one-thread pool,
//! and the gradients are averaged weighted by part size (the full batch's gradient, up to
//! float rounding). For the small convolutions of REF-CAE this can beat burn's intra-op
//! threading, which splits every small kernel across the cores.

use crate::error::{Result, TrainError};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// One single-thread pool per replica.
pub struct Replicas {
    pools: Vec<rayon::ThreadPool>,
}

impl Replicas {
    /// `n` replicas (at least 1).
    pub fn new(n: usize) -> Result<Self> {
        let pools = (0..n.max(1))
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("strata-replica-{i}"))
                    .build()
                    .map_err(|e| TrainError::config("--replicas", n, &format!("cannot start a thread pool: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { pools })
    }

    /// How many replicas.
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// Always false: there is at least one replica.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// The averaged gradients of `loss` (a mean over its rows) over the rows `idx`, and the
    /// mean loss, computed by the replicas in parallel.
    pub fn grads<M, L>(&self, model: &M, idx: &[usize], loss: L) -> (GradientsParams, f32)
    where
        M: Module + Send + Sync,
        L: Fn(&M, &[usize]) -> Tensor<1> + Sync,
    {
        let n = self.pools.len().min(idx.len()).max(1);
        let chunk = idx.len().div_ceil(n);
        let parts: Vec<&[usize]> = idx.chunks(chunk).collect();
        let results: Vec<(GradientsParams, f32, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .zip(&self.pools)
                .map(|(part, pool)| {
                    let loss = &loss;
                    s.spawn(move || {
                        pool.install(|| {
                            let l = loss(model, part);
                            let value = l.clone().into_scalar::<f32>();
                            (GradientsParams::from_grads(l.backward(), model), value, part.len())
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        let total = idx.len() as f32;
        let mean = results.iter().map(|(_, v, k)| v * *k as f32).sum::<f32>() / total;
        let mut avg = Average {
            parts: results.into_iter().map(|(g, _, k)| (g, k as f32 / total)).collect(),
            out: GradientsParams::new(),
        };
        model.visit(&mut avg);
        (avg.out, mean)
    }
}

/// Sums each parameter's gradient over the parts, weighted.
struct Average {
    parts: Vec<(GradientsParams, f32)>,
    out: GradientsParams,
}

impl ModuleVisitor for Average {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut sum: Option<Tensor<D>> = None;
        for (grads, w) in &mut self.parts {
            if let Some(g) = grads.remove::<D>(param.id) {
                let g = g.mul_scalar(*w);
                sum = Some(match sum {
                    Some(s) => s + g,
                    None => g,
                });
            }
        }
        if let Some(s) = sum {
            self.out.register(param.id, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use strata_nn::{Classifier, HeadSpec, InputShape, seeded};

    #[test]
    fn averaged_replica_gradients_equal_the_full_batch_gradient() {
        let device = Device::default().autodiff();
        let input = InputShape { channels: 1, height: 8, width: 8 };
        let arch = strata_nn::ArchSpec::parse("conv4-pool,dense8").unwrap();
        let head = HeadSpec::new(vec![], 3).unwrap();
        let model = seeded(&device, 1, || Classifier::new(&arch, &head, input, &device).unwrap());
        // 7 rows: the parts are 4 and 3, so the weighting by part size matters
        let values: Vec<f32> = (0..7 * 64).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [7, 1, 8, 8]), &device);
        let labels: Vec<i64> = (0..7).map(|i| i % 3).collect();
        let y = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(labels, [7]), &device);
        let loss = |m: &Classifier, rows: &[usize]| {
            let r = rows[0]..rows[0] + rows.len();
            crate::step::cross_entropy(m.forward(x.clone().slice([r.clone()])), y.clone().slice([r]))
        };
        let rows: Vec<usize> = (0..7).collect();
        let whole_loss = loss(&model, &rows);
        let whole = GradientsParams::from_grads(whole_loss.clone().backward(), &model);
        let (split, mean) = Replicas::new(2).unwrap().grads(&model, &rows, loss);
        assert!((mean - whole_loss.into_scalar::<f32>()).abs() < 1e-5);
        let ids = strata_nn::weights::param_ids(&model);
        assert_eq!(split.len(), whole.len());
        fn grad_values<const D: usize>(g: &GradientsParams, id: burn::module::ParamId) -> Option<Vec<f32>> {
            g.get::<D>(id).map(|t| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap())
        }
        // a gradient is read with its parameter's rank (GradientsParams::get panics on another)
        let rank: std::collections::BTreeMap<String, usize> =
            strata_nn::weights::layer_table(&model).into_iter().map(|l| (l.name, l.shape.len())).collect();
        let read = |g: &GradientsParams, name: &str, id| match rank[name] {
            4 => grad_values::<4>(g, id),
            2 => grad_values::<2>(g, id),
            _ => grad_values::<1>(g, id),
        };
        for (name, id) in ids {
            let (Some(a), Some(b)) = (read(&whole, &name, id), read(&split, &name, id)) else {
                panic!("{name}: a gradient is missing");
            };
            let diff = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "{name}: max difference {diff}");
        }
    }
}
