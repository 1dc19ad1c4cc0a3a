"""Reading results: records, tables, the leaderboard, plots, trackers and ``status``."""
