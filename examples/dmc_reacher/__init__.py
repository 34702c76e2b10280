"""DeepMind Control Suite reacher through shimmy: env factories, a scripted expert, the pipeline config."""
