SELECT version FROM model_aliases WHERE alias = :alias
