pub mod mock_oauth;
pub mod mock_provider;
pub mod mock_receiver;
pub mod recorder;
