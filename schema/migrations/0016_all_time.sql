-- depends: 0015_transformer_language
-- A chart's range may be all time (the design's dateRange "all"): NULL, every point the
-- metric has, rather than a longest number of days standing in for it.
ALTER TABLE chart_transformers ALTER COLUMN date_range_days DROP NOT NULL;
ALTER TABLE chart_transformer_versions ALTER COLUMN date_range_days DROP NOT NULL;
