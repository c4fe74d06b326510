//! Commands that talk to a running node's REST API (`docs/api.md`): reads, the live
//! inference stream, and signed ledger messages submitted with the admin token.
//!
//! Every command takes `--node URL` (default `http://127.0.0.1:8080`, env `CHORUS_NODE`).
//! Amounts are integer base units (`_` separators allowed: `1_000_000`).

use std::path::PathBuf;
use std::str::FromStr;

use chorus_crdt::proof::Variant;
use chorus_node::api::client::{DEFAULT_NODE, NodeClient};
use chorus_protocol::ids::Amount;
use chorus_protocol::keys::PublicKey;
use clap::{Args, Subcommand, ValueEnum};

use super::read::AccountView;
use super::{read, write};
use crate::output::{BadInput, Output};

/// Where the node is.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The node's REST API.
    #[arg(long = "node", env = "CHORUS_NODE", default_value = DEFAULT_NODE, value_name = "URL")]
    pub url: String,
}

/// Who signs, and how to reach the node's write endpoint.
#[derive(Debug, Clone, Args)]
pub struct TxArgs {
    /// The key file that signs the message.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Ledger nonce (default: the account's `next_nonce` from the node).
    #[arg(long)]
    pub nonce: Option<u64>,
    /// The node's admin token.
    #[arg(
        long,
        env = "CHORUS_ADMIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the node's admin token (its `[api] admin_token_file`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Wait until a checkpoint applies or refuses the message, and say which (with the
    /// ledger's reason): "accepted" alone only means the node's gossip validation passed.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit 1).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", requires = "wait")]
    pub wait_timeout: u64,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// An address argument: 64 hex characters.
pub fn parse_address(s: &str) -> Result<PublicKey, String> {
    PublicKey::from_str(s.trim())
        .map_err(|_| format!("{s:?} is not an address (64 hex characters)"))
}

/// An amount argument: a positive integer of base units.
pub fn parse_amount(s: &str) -> Result<Amount, String> {
    match Amount::from_str(s) {
        Ok(Amount(0)) => Err("the amount must be greater than zero".into()),
        Ok(a) => Ok(a),
        Err(_) => Err(format!(
            "{s:?} is not an amount: expected an integer number of base units, like 1_000_000"
        )),
    }
}

/// A role to register for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Inferer and/or forecaster.
    Worker,
    /// Reputer (needs stake).
    Reputer,
}

/// Topic commands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// List the topics the node knows.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show one topic.
    Show {
        /// Topic id.
        id: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Print each new network inference of a topic as it happens (Ctrl-C to stop).
    Watch {
        /// Topic id.
        id: u64,
        /// Stop after this many inferences.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Create a topic from a TOML definition (prints its id).
    Create {
        /// The topic definition (fields of `TopicSpec`, see README).
        #[arg(long, value_name = "FILE.toml")]
        spec: PathBuf,
        /// Creation fee paid into the topic's fee revenue (default: the default
        /// create-topic fee, 75000).
        #[arg(long, value_parser = parse_amount)]
        fee: Option<Amount>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// The topic's submission windows now: which epoch, open or not, closing when.
    Window {
        /// Topic id.
        id: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Add to a topic's fee revenue.
    Fund {
        /// Topic id.
        id: u64,
        /// Amount (base units).
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        tx: TxArgs,
    },
}

/// Inference commands.
#[derive(Debug, Subcommand)]
pub enum InferCommand {
    /// The latest network inference of a topic (or that of one epoch).
    Get {
        /// Topic id.
        topic: u64,
        /// Epoch (default: the latest).
        #[arg(long)]
        epoch: Option<u64>,
        /// `regular`, or `outlier_resistant` (inferences far from the epoch's median left
        /// out; exists once the epoch is finalized).
        #[arg(long, default_value = "regular")]
        variant: Variant,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A proof that one finalized network inference is what > 2/3 of the validators' stake
    /// signed (JSON, `docs/api.md`): save it and check it with `chorus infer verify`.
    Proof {
        /// Topic id.
        topic: u64,
        /// Epoch (default: the latest finalized).
        #[arg(long)]
        epoch: Option<u64>,
        /// Start the proof's validator-set changes at this trusted checkpoint height (verify
        /// with `--trusted-checkpoint HEIGHT:ID`); default: the genesis.
        #[arg(long, value_name = "HEIGHT")]
        trusted: Option<u64>,
        /// `regular` or `outlier_resistant`.
        #[arg(long, default_value = "regular")]
        variant: Variant,
        /// Write the proof here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Check an inference proof offline: exit 0 when it verifies, 1 when it does not, 2 when
    /// the file is malformed.
    Verify(super::verify::VerifyArgs),
}

/// Stake commands.
#[derive(Debug, Subcommand)]
pub enum StakeCommand {
    /// Stake on a reputer in a topic (yourself by default).
    Add(StakeArgs),
    /// Start unstaking (released after the unstaking delay).
    Remove(StakeArgs),
}

/// Arguments of `stake add|remove`.
#[derive(Debug, Args)]
pub struct StakeArgs {
    /// Topic id.
    pub topic: u64,
    /// Amount (base units).
    #[arg(value_parser = parse_amount)]
    pub amount: Amount,
    /// The reputer to delegate to (default: the signer itself).
    #[arg(long, value_parser = parse_address)]
    pub reputer: Option<PublicKey>,
    #[command(flatten)]
    pub tx: TxArgs,
}

/// The commands that talk to a node (flattened into the top-level command list).
/// Which account a read command shows.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// Address (64 hex).
    #[arg(value_parser = parse_address)]
    address: Option<PublicKey>,
    /// A key file whose address to use.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

/// Arguments of `rewards`.
#[derive(Debug, Args)]
pub struct RewardsArgs {
    #[command(flatten)]
    account: AccountArgs,
    /// Per-epoch statements: score, EMA score, weight, reward fraction and payout.
    #[arg(long)]
    history: bool,
    /// Only this topic.
    #[arg(long, requires = "history")]
    topic: Option<u64>,
    /// From this epoch (inclusive).
    #[arg(long, requires = "history")]
    from: Option<u64>,
    /// To this epoch (inclusive).
    #[arg(long, requires = "history")]
    to: Option<u64>,
    /// As CSV (one header line, one line per statement).
    #[arg(long, requires = "history", conflicts_with = "json")]
    csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Topics on the node: list, show, watch live, create, fund.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Network inferences.
    #[command(subcommand)]
    Infer(InferCommand),
    /// EMA scores, regrets and listening coefficients of a topic.
    Scores {
        /// Topic id.
        topic: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A topic's actors by score, with their rewards.
    Leaderboard {
        /// Topic id.
        topic: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Rewards of an account (default: the --key's address, else the node's own): the total,
    /// or with --history one line per settled epoch and role.
    Rewards(RewardsArgs),
    /// Balance, bond, stakes and nonce of an account (default: the --key's address, else the
    /// node's own).
    Balance(AccountArgs),
    /// Send tokens.
    Transfer {
        /// Recipient address (64 hex).
        #[arg(value_parser = parse_address)]
        to: PublicKey,
        /// Amount (base units).
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Reputer stake: add or remove.
    #[command(subcommand)]
    Stake(StakeCommand),
    /// Bond stake as a validator.
    Bond {
        /// Amount (base units).
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Start unbonding validator stake.
    Unbond {
        /// Amount (base units).
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Register the key for a role in a topic.
    Register {
        /// Topic id.
        topic: u64,
        /// The role.
        role: RoleArg,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Name the owner of a worker's or reputer's key: it receives the key's liquid rewards.
    /// Signed by the key itself while it has no owner, or by its owner to hand it over.
    SetOwner {
        /// The new owner (the key's own address: no separate owner).
        #[arg(value_parser = parse_address)]
        owner: PublicKey,
        /// The operating key (default: the --key's address).
        #[arg(long, value_parser = parse_address)]
        actor: Option<PublicKey>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Give up a role in a topic (a reputer's stake stays until unstaked).
    Unregister {
        /// Topic id.
        topic: u64,
        /// The role.
        role: RoleArg,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Governance: propose parameter or topic changes, vote, follow the tally.
    #[command(subcommand)]
    Gov(super::gov::GovCommand),
    /// The module parameters in force (governance changes them).
    Params {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The node's status: network, peers, checkpoint, roles, last submissions, balance.
    Status {
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// The node client of `--node`.
pub fn client(node: &NodeArgs) -> anyhow::Result<NodeClient> {
    NodeClient::new(&node.url).map_err(|e| BadInput(format!("--node {e}")).into())
}

/// Run a command that talks to a node.
pub fn run(cmd: ApiCommand, out: &Output) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cmd, out))
}

async fn dispatch(cmd: ApiCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ApiCommand::Topic(TopicCommand::List { node }) => read::topics(&client(&node)?, out).await,
        ApiCommand::Topic(TopicCommand::Show { id, node }) => {
            read::topic(&client(&node)?, id, out).await
        }
        ApiCommand::Topic(TopicCommand::Watch { id, count, node }) => {
            read::watch(&client(&node)?, id, count, out).await
        }
        ApiCommand::Topic(TopicCommand::Create { spec, fee, tx }) => {
            write::create_topic(&spec, fee, &tx, out).await
        }
        ApiCommand::Topic(TopicCommand::Fund { id, amount, tx }) => {
            write::fund_topic(id, amount, &tx, out).await
        }
        ApiCommand::Infer(InferCommand::Get {
            topic,
            epoch,
            variant,
            node,
        }) => read::inference(&client(&node)?, topic, (epoch, variant), out).await,
        ApiCommand::Infer(InferCommand::Proof {
            topic,
            epoch,
            trusted,
            variant,
            out: file,
            node,
        }) => {
            let what = (topic, epoch, trusted, variant);
            super::verify::fetch(&client(&node)?, what, file.as_deref(), out).await
        }
        ApiCommand::Infer(InferCommand::Verify(args)) => super::verify::verify(&args, out),
        ApiCommand::Scores { topic, node } => read::scores(&client(&node)?, topic, out).await,
        ApiCommand::Leaderboard { topic, node } => {
            read::leaderboard(&client(&node)?, topic, out).await
        }
        ApiCommand::Rewards(r) if r.history => {
            let filter = read::StatementFilter {
                topic: r.topic,
                from: r.from,
                to: r.to,
                csv: r.csv,
            };
            let a = r.account;
            read::statements(&client(&a.node)?, a.address, a.key, filter, out).await
        }
        ApiCommand::Rewards(r) => {
            let a = r.account;
            read::account(
                &client(&a.node)?,
                a.address,
                a.key,
                AccountView::Rewards,
                out,
            )
            .await
        }
        ApiCommand::Balance(a) => {
            read::account(
                &client(&a.node)?,
                a.address,
                a.key,
                AccountView::Balance,
                out,
            )
            .await
        }
        ApiCommand::Transfer { to, amount, tx } => write::transfer(to, amount, &tx, out).await,
        ApiCommand::Stake(StakeCommand::Add(a)) => write::stake(a, true, out).await,
        ApiCommand::Stake(StakeCommand::Remove(a)) => write::stake(a, false, out).await,
        ApiCommand::Bond { amount, tx } => write::bond(amount, true, &tx, out).await,
        ApiCommand::Unbond { amount, tx } => write::bond(amount, false, &tx, out).await,
        ApiCommand::Register { topic, role, tx } => {
            write::register(topic, role, true, &tx, out).await
        }
        ApiCommand::Unregister { topic, role, tx } => {
            write::register(topic, role, false, &tx, out).await
        }
        ApiCommand::Gov(c) => super::gov::run(c, out).await,
        ApiCommand::SetOwner { owner, actor, tx } => write::set_owner(owner, actor, &tx, out).await,
        ApiCommand::Params { node } => super::gov::params(&client(&node)?, out).await,
        ApiCommand::Topic(TopicCommand::Window { id, node }) => {
            read::window(&client(&node)?, id, out).await
        }
        ApiCommand::Status { node } => read::status(&client(&node)?, out).await,
    }
}

/// Reject an explicitly empty argument early (clap accepts `--token ""`).
pub fn non_empty(name: &str, value: &str) -> Result<(), BadInput> {
    if value.trim().is_empty() {
        Err(BadInput(format!("{name} is empty")))
    } else {
        Ok(())
    }
}
