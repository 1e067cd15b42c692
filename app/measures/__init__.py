"""The change package's monthly measures: computed in SQL, exported, and charted as SPC."""
