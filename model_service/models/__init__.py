"""The models the service runs: taggers, the audio language model and speech recognition,
with the devices they run on and the dynamic batcher that feeds them."""
