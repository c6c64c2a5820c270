//! `hlfp cost`: parameters and MACs of a variant, class count and cutout, and the README cost table.

use anyhow::{bail, Context};
use hlfp::eval::report::thousands;
use hlfp::model::cost::{cost, split_superclass_map, Cost, PartCost};
use hlfp::model::{ModelConfig, SuperclassMap, Variant};
use std::path::PathBuf;

/// Arguments of `hlfp cost`.
#[derive(clap::Args)]
pub struct Args {
    /// Model variant: hlfp-small, hlfp-big, hlfp-late-sp, hlfp-1b-late-sp, hlfp-nested,
    /// hlfp-late-big-sp, resnet18, resnet50, resnet152.
    #[arg(long, required_unless_present_any = ["table", "config"])]
    pub variant: Option<String>,
    /// A model's config JSON (e.g. models/hlfp_small.json, or a checkpoint's state.json)
    /// instead of --variant, --classes/--class-names, --width, --input-size and superclasses.
    #[arg(long, conflicts_with_all = ["variant", "classes", "class_names", "superclasses",
        "num_superclasses", "width", "input_size"])]
    pub config: Option<PathBuf>,
    /// Number of classes k (classes are named class0..class{k-1} unless --class-names is given).
    #[arg(long)]
    pub classes: Option<usize>,
    /// File with one class name per line (blank lines and `#` comments ignored).
    #[arg(long)]
    pub class_names: Option<PathBuf>,
    /// Cutout by class index, comma separated, e.g. 0,1,2,3,4.
    #[arg(long, value_delimiter = ',', conflicts_with = "active_names")]
    pub active: Option<Vec<usize>>,
    /// Cutout by class name, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub active_names: Option<Vec<String>>,
    /// HLFP-nested: superclass map file, one `class,superclass` per line.
    #[arg(long, conflicts_with = "num_superclasses")]
    pub superclasses: Option<PathBuf>,
    /// HLFP-nested: use N contiguous superclasses (costs depend only on the counts).
    #[arg(long)]
    pub num_superclasses: Option<usize>,
    /// Channel width multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Square input side in pixels.
    #[arg(long, default_value_t = 224)]
    pub input_size: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print the markdown cost table of every variant and the paper's cutouts (for the README).
    #[arg(long, alias = "markdown", conflicts_with_all = ["variant", "config", "classes", "class_names",
        "active", "active_names", "superclasses", "num_superclasses", "width", "input_size", "json"])]
    pub table: bool,
}

/// Runs `hlfp cost`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.table {
        print!("{}", markdown_table()?);
        return Ok(());
    }
    let cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            hlfp::model::files::parse_config(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => config_from_flags(&args)?,
    };
    let active: Option<Vec<usize>> = match (&args.active, &args.active_names) {
        (Some(idx), _) => Some(idx.clone()),
        (None, Some(names)) => Some(
            names
                .iter()
                .map(|n| cfg.class_index(n.trim()))
                .collect::<hlfp::Result<_>>()?,
        ),
        (None, None) => None,
    };
    let c = cost(&cfg, active.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{}", readable(&c));
    }
    Ok(())
}

/// The model config that --variant, --classes/--class-names, --width, --input-size and the
/// superclass flags describe.
fn config_from_flags(args: &Args) -> anyhow::Result<ModelConfig> {
    let Some(variant) = args.variant.as_deref() else {
        bail!("--variant is required (or use --config FILE or --table)");
    };
    let variant: Variant = variant.parse()?;
    let class_names = class_names(args)?;
    let mut cfg = ModelConfig::new(variant, class_names.len());
    cfg.class_names = class_names;
    cfg.width = args.width;
    cfg.input_size = args.input_size;
    cfg.superclasses = match (&args.superclasses, args.num_superclasses) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading superclass map {}", path.display()))?;
            Some(SuperclassMap::parse(&text, &cfg.class_names)?)
        }
        (None, Some(n)) => Some(SuperclassMap::contiguous(cfg.num_classes(), n)?),
        (None, None) if variant == Variant::HlfpNested => {
            bail!("hlfp-nested needs --superclasses FILE or --num-superclasses N")
        }
        (None, None) => None,
    };
    Ok(cfg)
}

/// Class names from --class-names, or class0.. from --classes; both must agree when given.
fn class_names(args: &Args) -> anyhow::Result<Vec<String>> {
    match (&args.class_names, args.classes) {
        (Some(path), k) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading class names {}", path.display()))?;
            let names: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect();
            if let Some(k) = k {
                if k != names.len() {
                    bail!(
                        "--classes {k} but {} lists {} classes",
                        path.display(),
                        names.len()
                    );
                }
            }
            Ok(names)
        }
        (None, Some(k)) => Ok((0..k).map(|i| format!("class{i}")).collect()),
        (None, None) => bail!("give --classes N or --class-names FILE"),
    }
}

fn gmacs(m: u64) -> String {
    format!("{:.3}", m as f64 / 1e9)
}

/// A plain-text report of one cost.
fn readable(c: &Cost) -> String {
    let mut s = format!(
        "{} with {} classes, {}x{} input, width {}\n",
        c.variant, c.num_classes, c.input_size, c.input_size, c.width
    );
    s += &format!(
        "running: {} of {} classes, {} branches, {} superclass blocks{}\n\n",
        c.active_classes,
        c.num_classes,
        c.active_branches,
        c.active_superclass_blocks,
        if c.active_classes < c.num_classes && !c.cutout_changes_network {
            " (this variant runs the whole network for any cutout; only the logits read change)"
        } else {
            ""
        }
    );
    s += &format!(
        "{:<22} {:>16} {:>20} {:>22}\n",
        "part", "params", "GMACs conv+linear", "GMACs ptflops-style"
    );
    let b = &c.breakdown;
    let total = PartCost {
        params: c.params,
        macs: c.macs,
        macs_ptflops: c.macs_ptflops,
    };
    let mut rows = vec![("trunk", b.trunk)];
    if c.active_superclass_blocks > 0 {
        rows.push(("superclass blocks", b.superclass_blocks));
    }
    rows.extend([
        ("branches", b.branches),
        ("heads", b.heads),
        ("total", total),
    ]);
    if c.active_branches > 0 {
        rows.push(("one branch + head", c.per_branch));
    }
    if c.active_superclass_blocks > 0 {
        rows.push(("one superclass block", c.per_superclass_block));
    }
    for (name, p) in rows {
        s += &format!(
            "{:<22} {:>16} {:>20} {:>22}\n",
            name,
            thousands(p.params),
            gmacs(p.macs),
            gmacs(p.macs_ptflops)
        );
    }
    s += "\nconv+linear: conv and linear multiply-accumulates only. ptflops-style (the paper's GMACs):\n\
          plus BatchNorm (2 per element), ReLU and pooling (2 per element: ptflops' module hook and functional patch both count).\n";
    s
}

/// Cost of `variant` with `k` classes (nested: `supers` superclasses) and an optional cutout.
fn row_cost(
    variant: Variant,
    k: usize,
    supers: Option<SuperclassMap>,
    active: Option<&[usize]>,
) -> anyhow::Result<Cost> {
    let mut cfg = ModelConfig::new(variant, k);
    cfg.superclasses = supers;
    Ok(cost(&cfg, active)?)
}

fn md_row(model: &str, k: usize, running: &str, c: &Cost, paper: &str) -> String {
    format!(
        "| {model} | {k} | {running} | {} | {} | {} | {paper} |\n",
        thousands(c.params),
        gmacs(c.macs),
        gmacs(c.macs_ptflops)
    )
}

/// The paper's parameter count for a full model, where it gives one (Table 2).
fn paper_params(v: Variant, k: usize) -> Option<u64> {
    let row: [u64; 3] = match v {
        Variant::Resnet18 => [11_181_642, 11_227_812, 11_689_512],
        Variant::Resnet50 => [23_528_522, 23_712_932, 25_557_032],
        Variant::Resnet152 => [58_164_298, 58_348_708, 60_192_808],
        Variant::HlfpSmall => [9_611_338, 83_109_028, 818_213_928],
        Variant::HlfpBig => [27_464_778, 261_643_428, 2_603_429_928],
        Variant::HlfpLateSp => [19_986_506, 122_975_396, 1_152_864_296],
        Variant::Hlfp1bLateSp => [9_688_778, 9_700_388, 9_816_488],
        Variant::HlfpNested => [0, 65_725_604, 577_977_384],
        Variant::HlfpLateBigSp => return None,
    };
    let p = match k {
        10 => row[0],
        100 => row[1],
        1000 => row[2],
        _ => return None,
    };
    (p != 0).then_some(p)
}

/// The markdown cost table: every variant at 10/100/1000 classes, then the paper's cutouts.
pub fn markdown_table() -> anyhow::Result<String> {
    let header = "| model | classes | running | params | GMACs conv+linear | GMACs ptflops-style (paper's convention) | paper |\n\
                  |---|---:|---|---:|---:|---:|---|\n";
    let mut s = String::from("All at 224x224, width 1, batch 1. *conv+linear* counts only convolution and linear \
multiply-accumulates; *ptflops-style* also counts BatchNorm (2 per element), ReLU (per output element, per call) and pooling (per input \
element), ReLU and pooling twice over, exactly as `ptflops` 0.7 (default PyTorch backend) does; that is what the paper's GMACs are.\n\n");
    s += "### Full models\n\n";
    s += header;
    for v in Variant::ALL {
        for k in [10usize, 100, 1000] {
            let (supers, label) = match (v, k) {
                (Variant::HlfpNested, 10) => continue,
                (Variant::HlfpNested, 100) => (
                    Some(SuperclassMap::contiguous(100, 68)?),
                    "all (68 superclasses)".to_string(),
                ),
                (Variant::HlfpNested, _) => (
                    Some(SuperclassMap::contiguous(k, 558)?),
                    "all (558 superclasses)".to_string(),
                ),
                _ => (None, "all".to_string()),
            };
            let c = row_cost(v, k, supers, None)?;
            let model = if v == Variant::HlfpLateBigSp {
                format!("{v} (our reconstruction)")
            } else {
                v.to_string()
            };
            let paper = match (paper_params(v, k), v) {
                (_, Variant::HlfpLateBigSp) => "not in the paper".to_string(),
                (Some(p), _) if p == c.params => "same params".to_string(),
                (Some(p), _) => format!(
                    "{} params (the paper's number does not follow from its architecture)",
                    thousands(p)
                ),
                (None, _) => "-".to_string(),
            };
            s += &md_row(&model, k, &label, &c, &paper);
        }
    }
    s += "\n### Cutouts (paper Table 3 and Sec. 4)\n\n";
    s += header;
    let first = |n: usize| (0..n).collect::<Vec<_>>();
    let last = |n: usize, k: usize| (k - n..k).collect::<Vec<_>>();
    let small = Variant::HlfpSmall;
    for (k, active, paper) in [
        (10, first(1), "1.975 GMACs conv+linear (PAPER.md)"),
        (10, last(5, 10), "5,528,133; 2.66 GMACs"),
        (
            100,
            first(20),
            "17,777,748; 6.72 GMACs (inconsistent with the architecture, see PAPER.md)",
        ),
        (100, last(80, 100), "66,776,208; 14.85 GMACs"),
    ] {
        let c = row_cost(small, k, None, Some(&active))?;
        s += &md_row(
            "hlfp-small",
            k,
            &format!(
                "{} branch{}",
                active.len(),
                if active.len() == 1 { "" } else { "es" }
            ),
            &c,
            paper,
        );
    }
    let late = row_cost(Variant::HlfpLateSp, 10, None, Some(&last(5, 10)))?;
    s += &md_row("hlfp-late-sp", 10, "5 branches", &late, "-");
    let map = split_superclass_map(100, 68, 20, 17, 52)?;
    for (active, label, paper) in [
        (
            first(20),
            "lower 20 classes, 17 superclass blocks",
            "16,148,052; 4.66 GMACs",
        ),
        (
            last(80, 100),
            "upper 80 classes, 52 superclass blocks",
            "51,565,712; 10.79 GMACs",
        ),
    ] {
        let c = row_cost(Variant::HlfpNested, 100, Some(map.clone()), Some(&active))?;
        s += &md_row("hlfp-nested (68 superclasses)", 100, label, &c, paper);
    }
    let r50 = row_cost(Variant::Resnet50, 5, None, None)?;
    s += &md_row(
        "resnet50",
        5,
        "all (trained on the 5 classes)",
        &r50,
        "23,518,277; 4.13 GMACs",
    );
    s += "\nA cutout of a ResNet or of hlfp-1b-late-sp still runs the whole network (only the logits read \
change), so its cost is the full model's. hlfp-late-big-sp is our reconstruction (late-SP trunk, \
B(1024,256,1024) -> B(1024,128,512) -> B(512,64,256), Linear(256,1)); the paper gives no counts for it.\n";
    Ok(s)
}
