pub mod saga;
pub mod view;
