use crate::model::OnnxOpRegister;

pub mod common;
pub mod gru;
pub mod lstm;
pub mod rnn;
pub mod scan;

pub fn register_all_ops(reg: &mut OnnxOpRegister) {
    #[cfg(feature = "all-ops")]
    reg.insert("GRU", gru::gru);
    #[cfg(feature = "all-ops")]
    reg.insert("LSTM", lstm::lstm);
    #[cfg(feature = "all-ops")]
    reg.insert("RNN", rnn::rnn);
    #[cfg(feature = "all-ops")]
    reg.insert("Scan", scan::scan);
}
