//! End to end: pretrain → finetune → evaluate → inspect on tiny real data, determinism,
//! and the scratch baseline.

use crate::common::*;

#[test]
fn pretrain_finetune_evaluate_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 300, 100);
    let d = data.to_str().unwrap();
    let runs = tmp.path().join("runs");
    let pre = runs.join("ae");
    let ft = runs.join("ft");
    ok(&["pretrain", "--method", "ae", "--data", d, "--out", pre.to_str().unwrap(), "--epochs", "1", "--quiet"]);
    for f in ["manifest.json", "model.safetensors", "metrics.jsonl"] {
        assert!(pre.join(f).is_file(), "{f} missing");
    }
    let m = manifest(&pre);
    assert_eq!(m["kind"], "pretrain");
    assert_eq!(m["data"]["images"], 300);
    assert_eq!(m["arch"], "conv32-pool,conv64-pool,dense128");
    let metrics = std::fs::read_to_string(pre.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "one line per epoch");

    ok(&[
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        d,
        "--test",
        &format!("{d}:test"),
        "--labels-per-class",
        "5",
        "--frozen-steps",
        "5",
        "--unfreeze-steps",
        "5",
        "--out",
        ft.to_str().unwrap(),
        "--quiet",
    ]);
    let m = manifest(&ft);
    assert_eq!(m["kind"], "finetune");
    assert_eq!(m["parent"]["reused_blocks"], 3);
    assert_eq!(m["data"]["label_indices"].as_array().unwrap().len(), 50);
    assert_eq!(m["phases"].as_array().unwrap().len(), 2);
    assert_eq!(m["phases"][1]["trainable_blocks"], serde_json::json!([2]));
    // the reused blocks normalise inputs as the parent did
    assert_eq!(m["normalization"], manifest(&pre)["normalization"]);

    let out = ok(&["evaluate", "--model", ft.to_str().unwrap(), "--data", &format!("{d}:test"), "--json"]);
    let e: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e["images"], 100);
    let acc = e["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert_eq!(e["confusion"].as_array().unwrap().len(), 10);
    assert_eq!(acc, m["metrics"]["test_accuracy"].as_f64().unwrap(), "evaluate agrees with the run's own score");
    let text = ok(&["evaluate", "--model", ft.to_str().unwrap(), "--data", &format!("{d}:test")]);
    assert!(text.contains("confusion matrix") && text.contains("precision"), "{text}");

    let table = ok(&["inspect", ft.to_str().unwrap()]);
    assert!(table.contains("backbone.0.conv.weight"), "{table}");
    assert!(table.contains("head.0.linear.weight"), "{table}");
    assert!(table.contains("frozen") && table.contains("trainable"), "{table}");
    assert!(table.contains("parent"), "{table}");
    let pre_table = ok(&["inspect", pre.to_str().unwrap()]);
    assert!(pre_table.contains("decoder.blocks.0.linear.weight"), "{pre_table}");

    let csv = ok(&["predict", "--model", ft.to_str().unwrap(), &format!("{d}:test")]);
    assert_eq!(csv.lines().count(), 101);
}

#[test]
fn same_seed_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 200, 50);
    let d = data.to_str().unwrap();
    let mut sums = Vec::new();
    for name in ["a", "b"] {
        let pre = tmp.path().join(format!("pre-{name}"));
        let ft = tmp.path().join(format!("ft-{name}"));
        ok(&[
            "pretrain",
            "--data",
            d,
            "--out",
            pre.to_str().unwrap(),
            "--epochs",
            "1",
            "--method",
            "dae",
            "--seed",
            "3",
            "-q",
        ]);
        ok(&[
            "finetune",
            "--from",
            pre.to_str().unwrap(),
            "--train",
            d,
            "--labels-per-class",
            "4",
            "--frozen-steps",
            "4",
            "--unfreeze-steps",
            "4",
            "--augment-shift",
            "0.1",
            "--seed",
            "3",
            "--out",
            ft.to_str().unwrap(),
            "-q",
        ]);
        let losses = |p: &std::path::Path| -> Vec<f64> {
            std::fs::read_to_string(p.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap())
                .collect()
        };
        sums.push((
            manifest(&pre)["weights"]["sha256"].clone(),
            manifest(&ft)["weights"]["sha256"].clone(),
            losses(&pre),
            losses(&ft),
            manifest(&ft)["data"]["label_indices"].clone(),
        ));
    }
    assert_eq!(sums[0], sums[1]);
}

#[test]
fn siamese_backbone_is_reused_like_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 120, 30);
    let d = data.to_str().unwrap();
    let pre = tmp.path().join("sia");
    let ft = tmp.path().join("ft");
    ok(&["pretrain", "--data", d, "--method", "siamese", "--epochs", "1", "--out", pre.to_str().unwrap(), "-q"]);
    let table = ok(&["inspect", pre.to_str().unwrap()]);
    assert!(table.contains("projector.weight") && table.contains("backbone.2.linear.weight"), "{table}");
    let line = std::fs::read_to_string(pre.join("metrics.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert!(v["twin_accuracy"].as_f64().unwrap() > 0.0, "{line}");
    ok(&[
        "finetune",
        "--from",
        pre.to_str().unwrap(),
        "--train",
        d,
        "--labels-per-class",
        "3",
        "--reuse",
        "2",
        "--frozen-steps",
        "3",
        "--unfreeze-steps",
        "3",
        "--out",
        ft.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(manifest(&ft)["parent"]["reused_blocks"], 2);
}

#[test]
fn config_file_sets_flags_and_the_command_line_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 100, 20);
    let d = data.to_str().unwrap();
    let cfg = tmp.path().join("strata.toml");
    std::fs::write(&cfg, "[finetune]\nlabels-per-class = 2\nfrozen-steps = 2\nunfreeze-steps = 3\narch = \"conv4-pool,dense8\"\nquiet = true\n").unwrap();
    let out = tmp.path().join("sc");
    ok(&[
        "finetune",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        "scratch",
        "--train",
        d,
        "--unfreeze-steps",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let m = manifest(&out);
    assert_eq!(m["arch"], "conv4-pool,dense8");
    assert_eq!(m["data"]["label_indices"].as_array().unwrap().len(), 20);
    assert_eq!(m["phases"][0]["steps"], 3, "2 frozen from the file + 1 unfreeze from the command line");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[finetune]\nlabels-per-klass = 2\n").unwrap();
    let e = fails(&[
        "finetune",
        "--config",
        bad.to_str().unwrap(),
        "--from",
        "scratch",
        "--train",
        d,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(e.contains("labels-per-klass"), "{e}");
}

#[test]
fn label_fraction_draws_a_stratified_share_and_excludes_labels_per_class() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 200, 20);
    let d = data.to_str().unwrap();
    let out = tmp.path().join("sc");
    let o = out.to_str().unwrap();
    let base = [
        "finetune",
        "--from",
        "scratch",
        "--train",
        d,
        "--arch",
        "conv4-pool,dense8",
        "--frozen-steps",
        "1",
        "--unfreeze-steps",
        "1",
        "-q",
    ];
    ok(&[&base[..], &["--label-fraction", "0.1", "--out", o]].concat());
    let idx = manifest(&out)["data"]["label_indices"].as_array().unwrap().len();
    assert!((19..=30).contains(&idx), "about 10 % of 200 with at least one per class, got {idx}");
    let e =
        fails(&[&base[..], &["--label-fraction", "0.1", "--labels-per-class", "2", "--out", o, "--force"]].concat());
    assert!(e.contains("not both"), "{e}");
    let e = fails(&[&base[..], &["--label-fraction", "1.5", "--out", o, "--force"]].concat());
    assert!(e.contains("--label-fraction"), "{e}");
}

#[test]
fn scratch_baseline_has_no_parent_and_trains_every_block() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 200, 50);
    let d = data.to_str().unwrap();
    let sc = tmp.path().join("scratch");
    ok(&[
        "finetune",
        "--from",
        "scratch",
        "--train",
        d,
        "--labels-per-class",
        "3",
        "--reuse",
        "2",
        "--frozen-steps",
        "3",
        "--unfreeze-steps",
        "3",
        "--out",
        sc.to_str().unwrap(),
        "-q",
    ]);
    let m = manifest(&sc);
    assert_eq!(m["kind"], "scratch");
    assert!(m["parent"].is_null());
    assert_eq!(m["arch"], "conv32-pool,conv64-pool");
    assert_eq!(m["phases"][0]["steps"], 6);
    assert_eq!(m["phases"][0]["trainable_blocks"], serde_json::json!([0, 1]));
}

#[test]
fn the_demo_compares_runs_that_share_recipe_steps_and_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 200, 50);
    let out = tmp.path().join("demo");
    let json = ok(&[
        "demo",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--labels-per-class",
        "3",
        "--frozen-steps",
        "4",
        "--unfreeze-steps",
        "4",
        "--no-untuned",
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert!(summary["accuracy_scratch_untuned"].is_null(), "{summary}");
    let (ft, sc) = (manifest(&out.join("finetune")), manifest(&out.join("scratch")));
    // the same recipe (augmentation, schedule, smoothing, steps), seed and label draw
    assert_eq!(ft["config"]["finetune"], sc["config"]["finetune"]);
    assert_eq!(ft["config"]["finetune"]["no_augment"], false);
    assert_eq!(ft["data"]["label_indices"], sc["data"]["label_indices"]);
    assert_eq!(ft["data"]["label_indices"].as_array().map(Vec::len), Some(30));
    let steps = |m: &serde_json::Value| {
        m["phases"].as_array().unwrap().iter().map(|p| p["steps"].as_u64().unwrap()).sum::<u64>()
    };
    assert_eq!((steps(&ft), steps(&sc)), (8, 8));
    assert_eq!((ft["kind"].as_str(), sc["kind"].as_str()), (Some("finetune"), Some("scratch")));
    // the default method with its own backbone, which the scratch row gets too, and the quick
    // start's cluster labels on the fine-tuned row
    let pre = manifest(&out.join("pretrain"));
    assert_eq!(pre["method"], "cluster");
    assert_eq!(pre["arch"], strata_train::method_by_name("cluster").unwrap().defaults().arch.to_string());
    assert_eq!(sc["arch"], pre["arch"]);
    assert_eq!(ft["config"]["finetune"]["cluster_labels"], 0.5);
    assert_eq!(pre["config"]["train"]["epochs"], 1);
}

#[test]
fn a_demo_flag_wins_over_the_methods_defaults_and_the_quick_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 100, 30);
    let demo = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec!["demo", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--epochs", "1"];
        args.extend([
            "--labels-per-class",
            "2",
            "--frozen-steps",
            "2",
            "--unfreeze-steps",
            "2",
            "--no-untuned",
            "--json",
        ]);
        args.extend(extra);
        ok(&args);
        (manifest(&out.join("pretrain")), manifest(&out.join("finetune")), manifest(&out.join("scratch")))
    };
    // --cluster-labels typed, even at the library's default, turns the quick start's 0.5 off
    let (pre, ft, _) = demo("off", &["--cluster-labels", "0"]);
    assert_eq!(pre["method"], "cluster");
    assert_eq!(ft["config"]["finetune"]["cluster_labels"], 0.0);
    // another method keeps its own defaults: REF-CAE for both rows, the noise typed
    let (pre, ft, sc) = demo("dae", &["--method", "dae", "--noise", "0.4"]);
    assert_eq!(pre["config"]["train"]["epochs"], 1);
    assert_eq!(pre["config"]["train"]["noise"].as_f64().map(|n| (n * 100.0).round()), Some(40.0));
    assert_eq!(pre["arch"], strata_train::PretrainConfig::default().arch.to_string());
    assert_eq!(sc["arch"], pre["arch"]);
    assert_eq!(ft["config"]["finetune"]["cluster_labels"], 0.0);
}

#[test]
fn version_names_the_revision_and_the_backends() {
    let v = ok(&["--version"]);
    assert!(v.starts_with(&format!("strata {}", env!("CARGO_PKG_VERSION"))), "{v}");
    assert!(v.contains("(git ") && v.contains("backends: cpu (flex)"), "{v}");
    assert_eq!(v.contains("ndarray"), cfg!(feature = "ndarray"), "{v}");
}

#[test]
fn conv_selects_the_implementation_and_both_train_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 200, 50);
    let d = data.to_str().unwrap();
    let mut losses = Vec::new();
    for conv in ["strata", "burn"] {
        let pre = tmp.path().join(format!("pre-{conv}"));
        ok(&[
            "--conv",
            conv,
            "pretrain",
            "--method",
            "ae",
            "--data",
            d,
            "--out",
            pre.to_str().unwrap(),
            "--epochs",
            "1",
            "--seed",
            "3",
            "-q",
        ]);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(pre.join("manifest.json")).unwrap()).unwrap();
        let loss = m["metrics"]["final_loss"].as_f64();
        losses.push((
            loss.unwrap_or_else(|| panic!("no loss in {m}")),
            std::fs::read(pre.join("model.safetensors")).unwrap(),
        ));
    }
    // different sums in different orders: not the same bytes, the same training to rounding
    assert_ne!(losses[0].1, losses[1].1, "--conv must change the implementation");
    assert!((losses[0].0 - losses[1].0).abs() <= 1e-3 * losses[1].0.abs(), "{} vs {}", losses[0].0, losses[1].0);
    let e = fails(&["--conv", "fast", "inspect", d]);
    assert!(e.contains("--conv") && e.contains("strata") && e.contains("burn"), "{e}");
}

/// A scratch classifier on a two-class PNG folder (`cat`, `dog`), and a folder of files to
/// predict made by the test: two good ones (one nested, one with a comma in its name), a
/// corrupt file and one of the wrong size.
fn predict_fixture(root: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let train = root.join("train");
    for (class, v) in [("cat", 40u8), ("dog", 200u8)] {
        std::fs::create_dir_all(train.join(class)).unwrap();
        for i in 0..6u32 {
            let img = image::GrayImage::from_fn(12, 12, |x, y| image::Luma([v.wrapping_add(((x * y + i) % 9) as u8)]));
            img.save(train.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let model = root.join("model");
    ok(&[
        "finetune",
        "--from",
        "scratch",
        "--arch",
        "conv4-pool,dense8",
        "--frozen-steps",
        "2",
        "--unfreeze-steps",
        "2",
        "--train",
        train.to_str().unwrap(),
        "--labels-per-class",
        "6",
        "--out",
        model.to_str().unwrap(),
        "-q",
    ]);
    let inputs = root.join("inputs");
    std::fs::create_dir_all(inputs.join("nested")).unwrap();
    image::GrayImage::from_pixel(12, 12, image::Luma([40])).save(inputs.join("a.png")).unwrap();
    image::GrayImage::from_pixel(12, 12, image::Luma([200])).save(inputs.join("nested/b, c.png")).unwrap();
    (model, inputs)
}

#[test]
fn predict_names_each_file_its_class_and_probabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, inputs) = predict_fixture(tmp.path());
    let (m, i) = (model.to_str().unwrap(), inputs.to_str().unwrap());

    // JSON: paths relative to the folder, class names, probabilities of all classes sum to 1
    let rows: serde_json::Value =
        serde_json::from_str(&ok(&["predict", "--model", m, i, "--format", "json", "--top-k", "2"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["file"].as_str().unwrap()).collect::<Vec<_>>(), ["a.png", "nested/b, c.png"]);
    for r in rows {
        let top: Vec<_> = r["top_k"].as_array().unwrap().iter().collect();
        let names: Vec<&str> = top.iter().map(|g| g["class"].as_str().unwrap()).collect();
        assert!(names.contains(&"cat") && names.contains(&"dog"), "{r}");
        let total: f64 = top.iter().map(|g| g["probability"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{r}");
        assert_eq!(r["class"], top[0]["class"]);
        assert!(top[0]["probability"].as_f64() >= top[1]["probability"].as_f64());
    }
    // CSV quotes a name with a comma; JSON lines give the same rows
    let csv = ok(&["predict", "--model", m, i]);
    assert_eq!(csv.lines().next().unwrap(), "file,class,probability");
    assert!(csv.contains("\"nested/b, c.png\","), "{csv}");
    let jsonl = ok(&["predict", "--model", m, i, "--format", "jsonl"]);
    assert_eq!(jsonl.lines().count(), 2);
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["class"], rows[0]["class"]);

    // a corrupt file stops the run, naming it; --skip-bad writes its row with the reason
    std::fs::write(inputs.join("broken.png"), b"not a png").unwrap();
    let e = fails(&["predict", "--model", m, i]);
    assert!(e.contains("broken.png") && e.contains("--skip-bad"), "{e}");
    let rows: serde_json::Value =
        serde_json::from_str(&ok(&["predict", "--model", m, i, "--format", "json", "--skip-bad"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "no file is silently dropped");
    assert!(rows[1]["error"].as_str().unwrap().contains("broken.png") && rows[1]["class"].is_null(), "{rows:?}");
    std::fs::remove_file(inputs.join("broken.png")).unwrap();

    // a file of another size: an error naming it and --resize, unless --resize
    image::GrayImage::from_pixel(20, 16, image::Luma([40])).save(inputs.join("wide.png")).unwrap();
    let e = fails(&["predict", "--model", m, i]);
    assert!(e.contains("wide.png") && e.contains("16x20") && e.contains("--resize"), "{e}");
    let csv = ok(&["predict", "--model", m, i, "--resize"]);
    assert!(csv.lines().any(|l| l.starts_with("wide.png,")), "{csv}");

    // IDX rows follow the same rule: 28x28 digits for a 12x12 model only with --resize
    let idx = tiny_mnist(&tmp.path().join("mnist"), 50, 50);
    let idx = format!("{}:test", idx.to_str().unwrap());
    let e = fails(&["predict", "--model", m, &idx]);
    assert!(e.contains("1x28x28") && e.contains("--resize"), "{e}");
    let csv = ok(&["predict", "--model", m, &idx, "--resize"]);
    assert_eq!(csv.lines().next(), Some("index,class,probability"));
    assert_eq!(csv.lines().count(), 51, "{csv}");
}

#[test]
fn completions_and_man_pages_come_from_the_parser() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        // subcommands and a flag deep in one: generated from the same definitions as the parser
        for word in ["pretrain", "finetune", "runs", "labels-per-class"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let e = fails(&["completions", "tcsh"]);
    assert!(e.contains("bash") && e.contains("fish"), "{e}");
    let page = ok(&["man"]);
    assert!(page.starts_with(".ie") || page.contains(".TH strata 1"), "{page}");
    assert!(page.contains("finetune") && page.contains("predict"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    ok(&["man", "--out", dir.path().to_str().unwrap()]);
    let predict = std::fs::read_to_string(dir.path().join("strata-predict.1")).unwrap();
    assert!(predict.contains("skip\\-bad") || predict.contains("skip-bad"), "{predict}");
}

#[test]
fn a_report_is_self_contained_and_agrees_with_the_manifests() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 200, 50);
    let d = data.to_str().unwrap();
    let test = format!("{d}:test");
    let run = |name: &str, per_class: &str, seed: &str| {
        let out = tmp.path().join(name);
        ok(&[
            "finetune",
            "--from",
            "scratch",
            "--arch",
            "conv4-pool,dense8",
            "--train",
            d,
            "--labels-per-class",
            per_class,
            "--frozen-steps",
            "0",
            "--unfreeze-steps",
            "60",
            "--seed",
            seed,
            "--test",
            &test,
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        out
    };
    let runs: Vec<std::path::PathBuf> = ["0", "1", "2"].iter().map(|s| run(&format!("scratch-{s}"), "4", s)).collect();
    // a second label count, for the accuracy-against-labels plot
    let fewer = run("scratch-2pc", "2", "0");
    let page_path = tmp.path().join("report.html");
    let mut args = vec!["report".to_string()];
    args.extend(runs.iter().chain([&fewer]).map(|r| r.to_str().unwrap().to_string()));
    args.extend(["--out".into(), page_path.to_str().unwrap().into()]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let page = std::fs::read_to_string(&page_path).unwrap();

    // well-formed (read as XML to the end), nothing fetched from the network
    for event in xml::reader::EventReader::new(page.as_bytes()) {
        event.unwrap_or_else(|e| panic!("the page does not parse: {e}"));
    }
    assert!(!page.contains("http://") && !page.contains("https://"));
    // every picture it names is embedded and is a PNG
    let srcs: Vec<&str> = page.split("src=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    assert!(!srcs.is_empty());
    for src in srcs {
        let b64 = src
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| panic!("not embedded: {}", &src[..40.min(src.len())]));
        let png = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    // the comparison row: mean and sample std over the three seeds, computed here
    let acc: Vec<f64> = runs.iter().map(|r| manifest(r)["metrics"]["test_accuracy"].as_f64().unwrap()).collect();
    let mean = acc.iter().sum::<f64>() / 3.0;
    let std = (acc.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let cell = format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * std);
    assert!(page.contains("<td class=\"l\">scratch</td><td>40</td><td>0, 1, 2</td>"), "{}", &page[..2000]);
    assert!(page.contains(&cell), "{cell} not in the comparison");
    // and each run's own figures
    for (r, a) in runs.iter().zip(&acc) {
        assert!(page.contains(&format!("<h2>{}</h2>", r.display())));
        assert!(page.contains(&format!("<th class=\"l\">test_accuracy</th><td>{a}</td>")), "{a}");
    }
}

/// Every `--json` output (and `predict --format json|jsonl`) against its schema in
/// docs/schemas: the documented shape is the one the commands print.
#[test]
fn every_json_output_matches_its_published_schema() {
    let schema = |name: &str| {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../docs/schemas/{name}.schema.json"));
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        jsonschema::validator_for(&value).unwrap_or_else(|e| panic!("{name}: not a valid schema: {e}"))
    };
    let check = |name: &str, text: &str, lines: bool| {
        let v = schema(name);
        let docs: Vec<serde_json::Value> = if lines {
            text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
        } else {
            vec![serde_json::from_str(text.trim()).unwrap()]
        };
        assert!(!docs.is_empty(), "{name}: no output");
        for d in docs {
            let errors: Vec<String> = v.iter_errors(&d).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(errors.is_empty(), "{name}: {errors:?}\n{d}");
        }
    };
    // the schemas are strict enough to refuse what the commands do not print
    assert!(!schema("evaluate").is_valid(&serde_json::json!({ "images": 1, "accuracy": 0.5 })));
    assert!(!schema("runs").is_valid(&serde_json::json!([{ "name": "x", "status": "finished" }])));
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(&tmp.path().join("mnist"), 200, 50);
    let d = data.to_str().unwrap();
    let test = format!("{d}:test");
    let runs = tmp.path().join("runs");
    let demo = ok(&[
        "demo",
        "--data",
        d,
        "--out",
        runs.join("demo").to_str().unwrap(),
        "--epochs",
        "1",
        "--labels-per-class",
        "3",
        "--frozen-steps",
        "4",
        "--unfreeze-steps",
        "4",
        "--json",
    ]);
    check("demo", &demo, false);
    let (pre, ft) = (runs.join("demo/pretrain"), runs.join("demo/finetune"));
    let (pre, ft) = (pre.to_str().unwrap(), ft.to_str().unwrap());
    check("evaluate", &ok(&["evaluate", "--model", ft, "--data", &test, "--json"]), false);
    check("probe", &ok(&["probe", pre, "--train", d, "--test", &test, "--labels-per-class", "3", "--json"]), true);
    check("inspect", &ok(&["inspect", ft, "--json"]), false);
    check("inspect", &ok(&["inspect", pre, "--json"]), false);
    check("predict", &ok(&["predict", "--model", ft, &test, "--format", "json", "--top-k", "3"]), false);
    check("predict", &ok(&["predict", "--model", ft, &test, "--format", "json"]), false);
    let jsonl = ok(&["predict", "--model", ft, &test, "--format", "jsonl"]);
    let rows: Vec<&str> = jsonl.lines().collect();
    check("predict", &format!("[{}]", rows.join(",")), false);
    let search = ok(&[
        "search",
        "--from",
        pre,
        "--train",
        d,
        "--test",
        &test,
        "--labels-per-class",
        "3",
        "--frozen-steps",
        "2",
        "--unfreeze-steps",
        "2",
        "--out",
        runs.join("search").to_str().unwrap(),
        "--json",
    ]);
    check("search", &search, true);
    std::fs::create_dir_all(runs.join("broken")).unwrap();
    std::fs::write(runs.join("broken/manifest.json"), "{").unwrap();
    check("runs", &ok(&["runs", runs.to_str().unwrap(), "--json"]), false);
}
