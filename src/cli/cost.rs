//! `hlfp cost`: parameters and MACs of a variant, class count and cutout.

/// Arguments of `hlfp cost`.
#[derive(clap::Args)]
pub struct Args {
    /// Model variant, e.g. hlfp-small, resnet50.
    #[arg(long)]
    pub variant: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("hlfp cost is not built yet (variant {})", args.variant)
}
