"""A media player stand-in for the end-to-end tests: it fetches what it is told to play, as a
network player does, and keeps the file (`<config>/player_stand_in/`) for the test to check."""
