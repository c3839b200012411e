"""clientip"""
