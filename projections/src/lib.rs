pub mod saga;
pub mod view;

#[cfg(test)]
mod tests;
